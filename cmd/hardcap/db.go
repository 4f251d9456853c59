package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// Files hardcap keeps in the data directory.
const (
	dbFile  = "hardcap.db"
	pidFile = "hardcap.pid"
)

// dbCommand runs `hardcap db check|recover|backup`. check and recover work
// on the file, offline (the server must be stopped: the database's lock says
// when it is not); backup asks the running server for a consistent copy.
func dbCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("db: want a subcommand: check, recover or backup (see hardcap help)")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("db " + sub)
	switch sub {
	case "check":
		data := fs.String("data-dir", "", "data directory (default $HARDCAP_DATA_DIR or ~/.local/share/hardcap)")
		config := fs.String("config", "", "config file naming the data directory")
		jsonOut := fs.Bool("json", false, "print the report as JSON")
		if _, err := parseFlags(fs, args, 0); err != nil {
			return err
		}
		path, err := dbPath(*data, *config)
		if err != nil {
			return err
		}
		rep, err := storage.Check(path)
		if err != nil {
			return offlineError(path, err)
		}
		if *jsonOut {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			printReport(stdout, rep)
		}
		if !rep.OK() {
			return fmt.Errorf("%s is damaged: restore a backup, or copy what is readable with `hardcap db recover --out NEWFILE`", path)
		}
		return nil
	case "recover":
		data := fs.String("data-dir", "", "data directory (default $HARDCAP_DATA_DIR or ~/.local/share/hardcap)")
		config := fs.String("config", "", "config file naming the data directory")
		out := fs.String("out", "", "the new file to write (required; must not exist)")
		jsonOut := fs.Bool("json", false, "print the report as JSON")
		if _, err := parseFlags(fs, args, 0); err != nil {
			return err
		}
		if *out == "" {
			return usageError("db recover: --out NEWFILE is required (the damaged file is never changed)")
		}
		path, err := dbPath(*data, *config)
		if err != nil {
			return err
		}
		rep, err := storage.Salvage(path, *out)
		if errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("%s exists; name a new file with --out", *out)
		}
		if err != nil {
			return offlineError(path, err)
		}
		// An empty copy must not read as a fix: the command fails, so a
		// script does not move it over the damaged ledger.
		empty := fmt.Errorf("%s; %s was written but holds no ledger to serve: keep %s", rep.Warning, *out, path)
		if *jsonOut {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
			if rep.Warning != "" {
				return empty
			}
			return nil
		}
		fmt.Fprintf(stdout, "copied from %s into %s: %s\n", path, *out, counts(rep.Copied))
		if len(rep.Dropped) > 0 {
			fmt.Fprintf(stdout, "left out (readable but not valid): %s\n", counts(rep.Dropped))
		}
		if rep.Rebuilt > 0 {
			fmt.Fprintf(stdout, "rebuilt %d derived entries (reserved amounts, token hashes)\n", rep.Rebuilt)
		}
		if len(rep.Unreadable) == 0 {
			fmt.Fprintln(stdout, "every entry was readable.")
		} else {
			fmt.Fprintln(stdout, "could not read (these entries are lost):")
			for _, p := range rep.Unreadable {
				fmt.Fprintln(stdout, "  "+p)
			}
		}
		if rep.Unrecorded > 0 {
			fmt.Fprintf(stdout, "%s USD of spend stays charged whose usage records were lost\n", rep.Unrecorded)
		}
		if rep.Uncounted > 0 {
			fmt.Fprintf(stdout, "%s USD of recorded charges lost their global spend counters: the global budget no longer counts them\n", rep.Uncounted)
		}
		if rep.Warning != "" {
			return empty
		}
		fmt.Fprintf(stdout, "%s passes `hardcap db check`. To use it: stop hardcap, keep %s aside, move %s to %s, start hardcap.\n", *out, path, *out, path)
		fmt.Fprintln(stdout, "Then check the budgets and tokens (hardcap project list, hardcap token list): spend in unreadable entries is not counted.")
		return nil
	case "backup":
		prepare := clientFlags(fs, stdout)
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		return backup(ctx, c, pos[0], stdout)
	}
	return usageError(fmt.Sprintf("unknown command %q", "db "+sub))
}

// dbPath is the database file of the data directory the flags name.
func dbPath(flagDir, config string) (string, error) {
	cfg, err := loadConfig(config)
	if err != nil {
		return "", err
	}
	dir, err := dataDir(flagDir, cfg.DataDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, dbFile), nil
}

// offlineError explains a failure of an offline db command.
func offlineError(path string, err error) error {
	switch {
	case errors.Is(err, storage.ErrLocked):
		return fmt.Errorf("%s is in use by a running hardcap: stop it first (`hardcap db backup FILE` works while it runs)", path)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("no database at %s: point --data-dir at the server's data directory", path)
	}
	return err
}

func printReport(w io.Writer, rep storage.Report) {
	if rep.OK() {
		fmt.Fprintf(w, "ok: %s (%d bytes, format %d): %s\n", rep.Path, rep.Bytes, rep.Format, counts(rep.Entries))
		return
	}
	fmt.Fprintf(w, "damaged: %s (%d bytes)\n", rep.Path, rep.Bytes)
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "  "+p)
	}
}

// counts prints entries per bucket, by bucket name.
func counts(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

// backup fetches a consistent copy from the running server into file: a
// temporary file beside it, synced, checked, then renamed over it, so file
// is always either the old copy or a complete new one. file "-" is stdout:
// the copy is checked in a temporary file first and then written out,
// nothing else is.
//
// A file that is the database of a running hardcap is refused before
// anything is fetched and again before the rename: renaming over a
// database a server has open leaves the server writing to a deleted file,
// and everything it writes after the backup is lost at its next start.
func backup(ctx context.Context, c *client, file string, stdout io.Writer) error {
	toStdout := file == "-"
	if toStdout && stdoutIsTerminal(stdout) {
		return usageError("db backup -: stdout is a terminal; redirect it to a file or a pipe (hardcap db backup - > hardcap-backup.db)")
	}
	if !toStdout {
		if err := checkBackupTarget(c, file); err != nil {
			return err
		}
	}
	resp, err := c.send(ctx, http.MethodGet, "/admin/v1/backup", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err := apiError(raw); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return fmt.Errorf("backup: server answered %s", resp.Status)
	}
	// CreateTemp makes the file 0600: the copy holds token hashes and
	// client IPs.
	dir := filepath.Dir(file)
	var f *os.File
	if toStdout {
		f, err = os.CreateTemp("", ".hardcap-backup-*.tmp")
	} else {
		f, err = os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	n, err := io.Copy(f, resp.Body)
	if err != nil && resp.ContentLength >= 0 && n < resp.ContentLength {
		err = fmt.Errorf("the server stopped after %d of %d bytes (see its log): %w", n, resp.ContentLength, err)
	} else if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("the server sent %d of %d bytes (see its log)", n, resp.ContentLength)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %s was not written: %w", file, err)
	}
	rep, err := storage.Check(tmp)
	if err != nil {
		return fmt.Errorf("backup: checking the copy: %w", err)
	}
	if !rep.OK() {
		return fmt.Errorf("backup: the copy fails its check (%s); %s was not written", rep.Problems[0], file)
	}
	if toStdout {
		f, err := os.Open(tmp)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer f.Close()
		if _, err := io.Copy(stdout, f); err != nil {
			return fmt.Errorf("backup: writing to stdout: %w", err)
		}
		return nil
	}
	// Again: a server may have started on file during the download.
	if err := checkBackupTarget(c, file); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if c.json {
		b, _ := json.MarshalIndent(map[string]any{"file": file, "bytes": n, "entries": rep.Entries}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(stdout, "backup written to %s (%d bytes, checked): %s\n", file, n, counts(rep.Entries))
	return nil
}

// checkBackupTarget refuses a backup FILE that is a live database: the
// database of the data dir the command names (the same file after
// symlinks, "./" and hard links), or any database whose lock a running
// hardcap holds. Nothing is written when it refuses.
func checkBackupTarget(c *client, file string) error {
	// The data dir may be unknown (no home directory and no flag); then
	// the lock alone decides.
	if live, err := dbPath(c.dataDir, c.config); err == nil {
		fi, ferr := os.Stat(file)
		li, lerr := os.Stat(live)
		if ferr == nil && lerr == nil && os.SameFile(fi, li) {
			return usageError(fmt.Sprintf("db backup: %s is the database of the data dir itself (%s); write the backup to another file, e.g. hardcap-backup.db", budget.Clip(file), live))
		}
	}
	held, err := storage.Held(file)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if held {
		return usageError(fmt.Sprintf("db backup: %s is the database of a running hardcap (its lock is held); write the backup to another file, e.g. hardcap-backup.db", budget.Clip(file)))
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return usageError(fmt.Sprintf("db backup: %s is a directory; name the backup file, e.g. %s", budget.Clip(file), filepath.Join(budget.Clip(file), "hardcap-backup.db")))
	}
	// The other files hardcap keeps beside its database (the admin token,
	// the pid file) must not be replaced by a backup either.
	if ownedFiles[filepath.Base(file)] {
		dir := filepath.Dir(file)
		if inDataDir(dir, c) {
			return usageError(fmt.Sprintf("db backup: %s is one of hardcap's own files in its data dir; write the backup to another file, e.g. hardcap-backup.db", budget.Clip(file)))
		}
	}
	return nil
}

// ownedFiles are the names hardcap keeps in its data dir.
var ownedFiles = map[string]bool{dbFile: true, dbFile + ".lock": true, "admin.token": true, "hardcap.pid": true, "prices": true}

// inDataDir reports whether dir is the command's data dir or the data dir
// of a running hardcap.
func inDataDir(dir string, c *client) bool {
	if live, err := dbPath(c.dataDir, c.config); err == nil {
		di, derr := os.Stat(dir)
		li, lerr := os.Stat(filepath.Dir(live))
		if derr == nil && lerr == nil && os.SameFile(di, li) {
			return true
		}
	}
	held, _ := storage.Held(filepath.Join(dir, dbFile))
	return held
}

// prepareDataDir creates the data directory private to its owner, or
// tightens an existing one that others can read: it holds the admin token
// and the database (token hashes, client IPs).
func (m *Main) prepareDataDir() error {
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	info, err := os.Stat(m.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(m.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %s is readable by others (%v) and cannot be made private: %w", m.DataDir, perm, err)
		}
		m.log.Warn().Str("data_dir", m.DataDir).Str("was", perm.String()).Msg("data dir was readable by others; set its mode to 0700")
	}
	return nil
}

// openStorage opens the database, explains a refusal in one line, and
// writes the pid file that tells a second hardcap who holds the directory.
func (m *Main) openStorage(opts storage.Options) (*storage.DB, error) {
	path := filepath.Join(m.DataDir, dbFile)
	opts.Log = m.log
	db, err := storage.Open(path, opts)
	switch {
	case errors.Is(err, storage.ErrLocked):
		return nil, fmt.Errorf("%s; hardcap did not start", holder(m.DataDir))
	case errors.Is(err, storage.ErrDamaged), errors.Is(err, storage.ErrNewerFormat):
		return nil, fmt.Errorf("%w; hardcap did not start. Restore a backup (stop, copy it to %s, start), see the details with `hardcap db check --data-dir %s`, or copy what is readable with `hardcap db recover --data-dir %s --out NEWFILE`",
			err, path, m.DataDir, m.DataDir)
	case err != nil:
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(m.DataDir, pidFile), []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("data dir: writing %s: %w", pidFile, err)
	}
	return db, nil
}

// closeStorage closes the database and removes the pid file (on a clean
// stop only: after a crash the stale file is harmless, since the lock, not
// the file, decides who holds the directory).
func (m *Main) closeStorage() error {
	err := m.db.Close()
	_ = os.Remove(filepath.Join(m.DataDir, pidFile))
	return err
}

// holder says who holds a locked data directory, from its pid file.
func holder(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil || pid <= 0 || !alive(pid) {
		return fmt.Sprintf("another process holds the data directory %s (no running hardcap serve is named in %s: perhaps a `hardcap db` command); wait for it or stop it", dir, pidFile)
	}
	return fmt.Sprintf("another hardcap (pid %d) holds the data directory %s: stop it first (kill %d), or give this one another --data-dir", pid, dir, pid)
}
