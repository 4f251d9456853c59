// Package pgtest starts a throwaway PostgreSQL server for tests: Debian's
// initdb and postgres into a temporary directory, on a free loopback port,
// as a user other than root (PostgreSQL refuses to run as root).
//
// Without the binaries a test skips with one line saying what to install,
// unless HARDCAP_TEST_REQUIRE is "all" or lists "postgres": then it fails
// (internal/testreq).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/testreq"
	"github.com/jackc/pgx/v5"
)

// Install says what to install when PostgreSQL is missing.
const Install = "install Debian's postgresql (apt-get install postgresql), or set HARDCAP_PG_BIN to the directory of initdb and postgres"

// Server is a running PostgreSQL server owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string // the server's files: data/ and the socket directory
	port int
	cred *syscall.Credential // nil when the test does not run as root

	mu  sync.Mutex
	ndb int // databases NewDatabase made
	cmd *exec.Cmd
	log *os.File
}

// Start initializes a database cluster in a temporary directory and starts
// PostgreSQL on a free loopback port; it is stopped and removed when the
// test ends. The database is "hardcap", the user "hardcap", trust
// authentication on loopback only.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := findBin()
	testreq.Need(t, "postgres", bin != "", "PostgreSQL tests: "+Install)
	dir, err := os.MkdirTemp("", "hardcap-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Server{t: t, bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		s.cred, err = unprivileged()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		// The server user must reach its files through the temporary
		// directory, which MkdirTemp made 0700 for root.
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "hardcap", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.port = freePort(t)
	s.start()
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE hardcap"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s
}

// DSN is the connection string of the test database.
func (s *Server) DSN() string { return s.dsn("hardcap") }

// NewDatabase creates a fresh, empty database and returns its DSN, so
// that the subtests of one server do not see each other's tables.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.ndb++
	name := fmt.Sprintf("hardcap_%d", s.ndb)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.dsn(name)
}

// Port is the server's loopback TCP port.
func (s *Server) Port() int { return s.port }

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://hardcap@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", s.port, db)
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// start runs postgres and waits until it accepts connections.
func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	// fsync off: a test's server dies with its process, never with the
	// machine, and a killed postgres keeps what it wrote in the page
	// cache. synchronous_commit stays on, as the cluster store needs.
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir(),
		"-p", strconv.Itoa(s.port), "-k", s.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=on",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		s.t.Fatalf("pgtest: postgres: %v", err)
	}
	s.cmd, s.log = cmd, logf
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
		if err == nil {
			_ = c.Close()
			if s.ready() {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			s.t.Fatalf("pgtest: postgres did not start in 30 s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether the server answers a query (it accepts TCP
// connections before it has finished starting up).
func (s *Server) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx) == nil
}

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back, committed ones kept) and waits for it. Stopping a stopped server
// does nothing.
func (s *Server) Stop() { s.halt(syscall.SIGINT) }

// Kill ends the server at once with SIGKILL, as a crash would; committed
// transactions survive (they are in the write-ahead log).
func (s *Server) Kill() { s.halt(syscall.SIGKILL) }

func (s *Server) halt(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	// The whole process group: a killed postmaster leaves its backends.
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = s.log.Close()
	s.cmd, s.log = nil, nil
	if sig == syscall.SIGKILL {
		// A killed postmaster leaves its pid file; the next start checks
		// whether that process still lives, so remove it to be sure.
		_ = os.Remove(filepath.Join(s.dataDir(), "postmaster.pid"))
	}
}

// Restart stops the server if it runs and starts it again on the same port
// and files.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Start starts a stopped server again on the same port and files.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if !running {
		s.start()
	}
}

// Log is what the server wrote to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	return string(b)
}

// findBin is the directory holding initdb and postgres: $HARDCAP_PG_BIN,
// the newest /usr/lib/postgresql/N/bin, or the directory of initdb on PATH;
// "" when there is none.
func findBin() string {
	ok := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("HARDCAP_PG_BIN"); d != "" {
		if ok(d) {
			return d
		}
		return ""
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && ok(filepath.Dir(p)) {
		return filepath.Dir(p)
	}
	return ""
}

// version is N of /usr/lib/postgresql/N/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// unprivileged is the user a root test runs PostgreSQL as: "nobody".
func unprivileged() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, errors.New("running as root, and there is no user nobody to run PostgreSQL as")
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort is a loopback TCP port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
