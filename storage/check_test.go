package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// filledDB writes a ledger with enough records to span many pages, with
// open reservations left for recovery, and returns its closed file's path.
func filledDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{Amount: 1 << 40})
	for i := range 600 {
		res, err := reserve(db, tok, flat(1000))
		if err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			continue // left open
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 10, Outcome: budget.Complete}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// withBolt changes the file with bbolt directly, as a damaged or old file
// would be.
func withBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
}

// bucketPage returns the root page of a bucket, and with child the page of
// its second child (the root of a bucket this size is a branch).
func bucketPage(t *testing.T, path, bucket string, child bool) (uint64, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	w, _, err := walkFile(f, info.Size(), false)
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	w.seen = map[uint64]bool{}
	w.walkTree("root", w.meta.root, 0, func(e leafEntry) {
		if string(e.key) == bucket {
			root = le.Uint64(e.value)
		}
	})
	if root == 0 {
		t.Fatalf("bucket %s has no root page", bucket)
	}
	if !child {
		return root, int(w.meta.pageSize)
	}
	w.seen = map[uint64]bool{}
	buf, err := w.page(root)
	if err != nil || le.Uint16(buf[8:]) != branchPage {
		t.Fatalf("root page %d of %s is not a branch (%v)", root, bucket, err)
	}
	return le.Uint64(buf[pageHeaderSize+elemSize+8:]), int(w.meta.pageSize)
}

func overwritePage(t *testing.T, path string, id uint64, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := bytes.Repeat([]byte{0xA5, 0x17, 0xFF, 0x03}, pageSize/4)
	if _, err := f.WriteAt(junk, int64(id)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// writePage overwrites page id with zeros (seed 0) or random bytes.
func writePage(t *testing.T, path string, id uint64, pageSize int, seed uint64) {
	t.Helper()
	buf := make([]byte, pageSize)
	if seed != 0 {
		rng := rand.New(rand.NewPCG(seed, seed))
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(buf, int64(id)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_RefusesDamagedFiles(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   error
		says   string
	}{
		{"empty", func(t *testing.T, path string) { os.Truncate(path, 0) }, ErrDamaged, "empty (0 bytes)"},
		{"truncated", func(t *testing.T, path string) {
			info, _ := os.Stat(path)
			os.Truncate(path, info.Size()/2)
		}, ErrDamaged, "truncated"},
		{"overwritten bucket root", func(t *testing.T, path string) {
			id, ps := bucketPage(t, path, "records", false)
			overwritePage(t, path, id, ps)
		}, ErrDamaged, "records: page"},
		{"overwritten leaf", func(t *testing.T, path string) {
			id, ps := bucketPage(t, path, "records", true)
			overwritePage(t, path, id, ps)
		}, ErrDamaged, "records: page"},
		{"meta page 0 zeros", func(t *testing.T, path string) { writePage(t, path, 0, 4096, 0) }, ErrDamaged, "meta page 0 is overwritten"},
		{"meta page 0 random", func(t *testing.T, path string) { writePage(t, path, 0, 4096, 1) }, ErrDamaged, "meta page 0 is overwritten"},
		{"meta page 1 zeros", func(t *testing.T, path string) { writePage(t, path, 1, 4096, 0) }, ErrDamaged, "meta page 1 is overwritten"},
		{"meta page 1 random", func(t *testing.T, path string) { writePage(t, path, 1, 4096, 2) }, ErrDamaged, "meta page 1 is overwritten"},
		{"meta page 1 header names another page", func(t *testing.T, path string) {
			// The checksum covers only the meta fields: this page still
			// validates, and bbolt's check asserts on its header.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{7}, 4096); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged, "meta page 1 is overwritten"},
		{"bucket missing", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLimits) })
		}, ErrDamaged, `bucket "limits" is missing`},
		{"reserved counter off", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error {
				k, _ := tx.Bucket(bucketSpend).Cursor().First()
				sp := getSpend(tx, string(k))
				sp.Reserved += 5
				return putSpend(tx, string(k), sp)
			})
		}, ErrDamaged, "but its open reservations hold"},
		{"committed counter negative", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error {
				k, _ := tx.Bucket(bucketSpend).Cursor().First()
				sp := getSpend(tx, string(k))
				sp.Committed = -sp.Committed - 1
				return putSpend(tx, string(k), sp)
			})
		}, ErrDamaged, "is negative"},
		{"record charge changed", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketRecords)
				k, v := b.Cursor().Last()
				// The binary form's charge is the zigzag varint after the
				// tag: 10 nano-USD (20) becomes 20 nano-USD (40).
				if v[0] != recordV1 || v[1] != 20 {
					t.Fatalf("record %x is not a binary one charging 10 nano-USD", v)
				}
				nv := bytes.Clone(v)
				nv[1] = 40
				return b.Put(k, nv)
			})
		}, ErrDamaged, "the global spend counters hold 0.00000594 USD committed but the usage records charge 0.00000595 USD"},
		{"reservation without its global counter", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketReservations)
				k, v := b.Cursor().First()
				return b.Put(k, bytes.Replace(v, []byte(`global|`), []byte(`glob4l|`), 1))
			})
		}, ErrDamaged, "holds 0 global spend counters, want 1"},
		{"newest meta page checksum spoiled", func(t *testing.T, path string) {
			// bbolt would start on the previous commit and silently drop
			// the last one (reservations of requests already forwarded, a
			// kill); the meta record sits in one sector, so this is rot or a
			// misdirected write, not a torn commit.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			info, _ := f.Stat()
			metas, err := readMetas(f, info.Size())
			if err != nil {
				t.Fatal(err)
			}
			off := int64(metas[0].txid%2)*int64(metas[0].pageSize) + pageHeaderSize + 56
			if _, err := f.WriteAt([]byte{0xde, 0xad}, off); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged, "checksum mismatch"},
		{"newer format", func(t *testing.T, path string) {
			withBolt(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaFormat, []byte("99")) })
		}, ErrNewerFormat, "format 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filledDB(t)
			tt.damage(t, path)
			before, _ := os.ReadFile(path)
			db, err := Open(path, Options{})
			if err == nil {
				db.Close()
				t.Fatal("Open served a damaged file")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want %v saying %q and the path", err, tt.want, tt.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("the error is more than one line: %q", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("Open changed the refused file")
			}
			rep, err := Check(path)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("Check found nothing wrong")
			}
		})
	}
}

func TestOpen_FormatVersion(t *testing.T) {
	path := filledDB(t)
	// A file of a hardcap from before format versions has none.
	withBolt(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaFormat) })
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(db.Recovered()); n != 6 {
		t.Fatalf("recovered %d reservations, want 6", n)
	}
	db.Close()
	rep, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	// Read as version 1, then migrated to the current version.
	if !rep.OK() || rep.Format != FormatVersion || rep.Entries["records"] != 600 || rep.Entries["reservations"] != 0 {
		t.Fatalf("got %+v, want a sound version %d file with 600 records", rep, FormatVersion)
	}
	withBolt(t, path, func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketMeta).Get(metaFormat)); v != strconv.Itoa(FormatVersion) {
			t.Errorf("format version %q, want %d written", v, FormatVersion)
		}
		return nil
	})
}

func TestOpen_NewFileAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != want {
			t.Fatalf("%s: mode %v (%v), want %o", p, info.Mode().Perm(), err, want)
		}
	}
	// A backup copied in with cp keeps its 0644: Open tightens it.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	db, err = Open(path, Options{Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 || !strings.Contains(logs.String(), "readable by others") {
		t.Fatalf("mode %v, log %q; want 0600 and a warning", info.Mode().Perm(), logs.String())
	}
}

func TestOpen_Locked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(path, Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	if _, err := Check(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("Check of an open file: got %v, want ErrLocked", err)
	}
}

func TestSalvage_CopiesWhatIsReadable(t *testing.T) {
	path := filledDB(t)
	leaf, ps := bucketPage(t, path, "records", true)
	overwritePage(t, path, leaf, ps)
	out := filepath.Join(t.TempDir(), "recovered.db")
	rep, err := Salvage(path, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unreadable) == 0 || !strings.Contains(rep.Unreadable[0], fmt.Sprintf("page %d", leaf)) {
		t.Fatalf("unreadable %q, want page %d named", rep.Unreadable, leaf)
	}
	if n := rep.Copied["records"]; n == 0 || n >= 594 {
		t.Fatalf("copied %d of 594 records, want all but one page's", n)
	}
	if rep.Copied["reservations"] != 6 || rep.Copied["tokens"] != 1 || rep.Copied["token_hashes"] != 1 {
		t.Fatalf("copied %v", rep.Copied)
	}
	// Each settled record charged 10 nano-USD; the lost ones stay charged.
	if want := budget.Money(10 * (594 - rep.Copied["records"])); rep.Unrecorded != want || rep.Uncounted != 0 {
		t.Fatalf("unrecorded %d, uncounted %d; want %d and 0", rep.Unrecorded, rep.Uncounted, want)
	}
	if rep.Warning != "" {
		t.Fatalf("warning %q for a copy with its project and token", rep.Warning)
	}
	chk, err := Check(out)
	if err != nil || !chk.OK() {
		t.Fatalf("the salvaged file fails its check: %v %v", chk.Problems, err)
	}
	if info, _ := os.Stat(out); info.Mode().Perm() != 0o600 {
		t.Fatalf("salvaged file mode %v, want 0600", info.Mode().Perm())
	}
	db, err := Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(db.Recovered()); n != 6 {
		t.Fatalf("the salvaged file charged %d open reservations, want 6", n)
	}
	db.Close()
	// Recovery settled the open reservations: the sum still holds.
	if chk, err := Check(out); err != nil || !chk.OK() {
		t.Fatalf("the salvaged file after recovery fails its check: %v %v", chk.Problems, err)
	}
	if _, err := Salvage(path, out); !errors.Is(err, ErrExists) {
		t.Fatalf("salvage onto an existing file: got %v, want ErrExists", err)
	}
}

// TestDB_FaultsBecomeErrors damages the file under a running DB: reads and
// writes that hit it fail with ErrDamaged, logged at error level, later
// calls fail at once instead of waiting on a lock the fault left held, and
// Close returns. Before, the fault killed the process.
func TestDB_FaultsBecomeErrors(t *testing.T) {
	for _, size := range []int64{8192, 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filledDB(t)
			var logs bytes.Buffer
			db, err := Open(path, Options{Log: zerolog.New(&logs), NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.view(func(*bolt.Tx) error { panic("a bug") }); !errors.Is(err, ErrDamaged) {
				t.Fatalf("panicking read: got %v, want ErrDamaged", err)
			}
			if err := db.update(ctx, func(*bolt.Tx) error { panic("a bug") }); !errors.Is(err, ErrDamaged) {
				t.Fatalf("panicking write: got %v, want ErrDamaged", err)
			}
			if _, err := db.Projects(); err != nil {
				t.Fatalf("a plain panic broke later reads: %v", err)
			}
			// Cutting the file under bbolt's mmap makes reading it fault
			// (SIGBUS); at 4096 bytes even the meta page of a new
			// transaction is gone.
			if err := os.Truncate(path, size); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Usage(RecordFilter{}); !errors.Is(err, ErrDamaged) {
				t.Fatalf("reading a truncated file: got %v, want ErrDamaged", err)
			}
			if _, err := db.Projects(); !errors.Is(err, ErrDamaged) {
				t.Fatalf("read after a fault: got %v, want ErrDamaged", err)
			}
			if _, err := db.CreateProject(ctx, "late", budget.Limit{}); !errors.Is(err, ErrDamaged) {
				t.Fatalf("write after a fault: got %v, want ErrDamaged", err)
			}
			if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "a read in") {
				t.Fatalf("the fault is not logged at error level: %s", logs.String())
			}
			if err := db.Close(); !errors.Is(err, ErrDamaged) {
				t.Fatalf("Close: got %v, want ErrDamaged", err)
			}
		})
	}
}

// TestOpen_RandomDamageNeverCrashes overwrites random pages and random
// bytes of a ledger: Open either refuses the file or serves one whose every
// record reads back, and never crashes the process.
func TestOpen_RandomDamageNeverCrashes(t *testing.T) {
	clean := filledDB(t)
	orig, err := os.ReadFile(clean)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 1))
	refused := 0
	for i := range 60 {
		data := bytes.Clone(orig)
		switch i % 4 {
		case 0:
			// A whole page of junk, as a misdirected write leaves; the
			// meta pages 0 and 1 included.
			page := rng.IntN(len(data) / 4096)
			for j := range 4096 {
				data[page*4096+j] = byte(rng.Uint32())
			}
		case 1:
			// A meta page zeroed or junked.
			page, zero := rng.IntN(2), rng.IntN(2) == 0
			for j := range 4096 {
				data[page*4096+j] = 0
				if !zero {
					data[page*4096+j] = byte(rng.Uint32())
				}
			}
		case 2:
			// Bytes of a meta page's header and fields.
			for range 2 {
				data[rng.IntN(2)*4096+rng.IntN(pageHeaderSize+metaSize)] = byte(rng.Uint32())
			}
		default:
			for range 8 {
				data[rng.IntN(len(data))] = byte(rng.Uint32())
			}
		}
		path := filepath.Join(t.TempDir(), "hardcap.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Check is what `hardcap db check` runs; bbolt's check inside it
		// reads the freelist in a goroutine of its own.
		if _, err := Check(path); err != nil {
			t.Fatalf("round %d: Check: %v", i, err)
		}
		db, err := Open(path, Options{NoSync: true})
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNewerFormat) {
				t.Fatalf("round %d: refused with %v, want ErrDamaged", i, err)
			}
			refused++
			continue
		}
		if i%4 == 1 {
			t.Errorf("round %d: Open served a file with an overwritten meta page", i)
		}
		if _, err := db.Usage(RecordFilter{}); err != nil {
			t.Errorf("round %d: Open served a file whose records do not read: %v", i, err)
		}
		db.Close()
	}
	if refused == 0 {
		t.Fatal("no damage was ever refused")
	}
}

// memoryFault looks like the runtime error of a fault on a mapped page.
type memoryFault struct{}

func (memoryFault) Error() string { return "unexpected fault address" }
func (memoryFault) Addr() uintptr { return 0xdead }
func (memoryFault) RuntimeError() {}

// TestCommitBatch_NothingCommitsAfterAFault: when one operation of a batch
// faults on the mapped file, the batch's other operations are refused too,
// not committed on a ledger that refuses every later call (their requests
// would be forwarded and could never settle).
func TestCommitBatch_NothingCommitsAfterAFault(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.NoLimit(""), budget.NoLimit(""))
	bad := &writeOp{fn: func(tx *bolt.Tx) error { panic(memoryFault{}) }, done: make(chan error, 1)}
	good := &writeOp{fn: func(tx *bolt.Tx) error {
		_, err := db.reserve(tx, budget.Request{TokenID: tok.ID, Model: "m"}, flat(10), false)
		return err
	}, done: make(chan error, 1)}
	db.commitBatch([]*writeOp{bad, good})
	if err := <-bad.done; !errors.Is(err, ErrDamaged) {
		t.Fatalf("the faulting operation got %v, want ErrDamaged", err)
	}
	if err := <-good.done; !errors.Is(err, ErrDamaged) {
		t.Fatalf("the other operation of the batch got %v, want ErrDamaged (nothing commits after a fault)", err)
	}
	db.wedged.Store(false) // the fault was fake: let Close run normally
}

// TestLanded: a transaction is seen as landed once bbolt reads it as the
// newest, which is how a commit whose fsync failed after its meta page was
// written is told apart from one rolled back.
func TestLanded(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	var txid int
	if err := db.bolt.Update(func(tx *bolt.Tx) error { txid = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	if !db.landed(txid) {
		t.Fatalf("committed transaction %d not seen as landed", txid)
	}
	if db.landed(txid + 1) {
		t.Fatalf("transaction %d that never committed seen as landed", txid+1)
	}
}

// fullDB writes a ledger in which every field hardcap stores is set: a
// killed project with a limit, tokens with every option, revoked and
// killed, a limit in the old form without ceiling_usd, records with every
// usage field, and an open reservation.
func fullDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true, Global: budget.Ceiling(1<<40, budget.Month)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProject(ctx, "web", budget.Ceiling(5_000_000_000, budget.Month)); err != nil {
		t.Fatal(err)
	}
	tok, _, err := db.CreateToken(ctx, TokenSpec{Project: "web", Name: "app", Limit: budget.Ceiling(0, budget.Day),
		Models: []string{"m"}, Expires: time.Now().Add(time.Hour), RPM: 60})
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := db.CreateToken(ctx, TokenSpec{Project: "web", Limit: budget.NoLimit(budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		res, err := reserve(db, other, flat(1000))
		if err != nil {
			t.Fatal(err)
		}
		usage := budget.Usage{InputTokens: 9, CacheReadTokens: 1, CacheWriteTokens: 2, CacheWrite1hTokens: 3, OutputTokens: 5, ReasoningTokens: 4}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 2000, Usage: usage, Status: 200, Outcome: budget.Complete, Latency: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reserve(db, other, flat(1000)); err != nil {
		t.Fatal(err)
	}
	if err := db.SetKill(ctx, KillTarget{Token: other.ID}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.SetKill(ctx, KillTarget{Project: "web"}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.SetKill(ctx, KillTarget{}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	withBolt(t, path, func(tx *bolt.Tx) error {
		// A limit as hardcap wrote it before zero ceilings: limit_usd only.
		return tx.Bucket(bucketLimits).Put([]byte("project:old"), []byte(`{"limit_usd":"5.000000","period":"month"}`))
	})
	return path
}

// TestCheck_EntriesDecodeStrictly: a file this hardcap wrote passes, and a
// flipped byte in a field name or junk after an entry is damage. Before,
// "killsd" decoded with the kill switch off.
func TestCheck_EntriesDecodeStrictly(t *testing.T) {
	tests := []struct {
		name   string
		bucket []byte
		edit   func(v []byte) []byte
		says   string
	}{
		{"sound", nil, nil, ""},
		{"project field renamed", bucketProjects, func(v []byte) []byte {
			return bytes.Replace(v, []byte(`"killed":true`), []byte(`"killsd":true`), 1)
		}, `projects entry "web" does not decode: json: unknown field "killsd"`},
		{"token field renamed", bucketTokens, func(v []byte) []byte {
			return bytes.Replace(v, []byte(`"killed"`), []byte(`"kilbed"`), 1)
		}, "unknown field"},
		{"limit field renamed", bucketLimits, func(v []byte) []byte {
			return bytes.Replace(v, []byte(`"period"`), []byte(`"perIod!"`), 1)
		}, "unknown field"},
		{"record with data after it", bucketRecords, func(v []byte) []byte { return append(v, 0) }, "data after the record"},
		{"record cut short", bucketRecords, func(v []byte) []byte { return v[:len(v)-2] }, "record ends early"},
		{"record names a lost string", bucketRecords, func(v []byte) []byte {
			// The token is the third field, after the two charges.
			_, n1 := binary.Varint(v[1:])
			_, n2 := binary.Varint(v[1+n1:])
			v[1+n1+n2] = 0x7e // id 63, interned (low bit clear), never given
			return v
		}, "record names a string the dictionary lacks"},
		{"record in JSON in a format 2 file", bucketRecords, func(v []byte) []byte {
			return []byte(`{"time":"2026-01-01T00:00:00Z","id":"r1"}`)
		}, "is not in the binary form of format 2"},
		{"data after a reservation", bucketReservations, func(v []byte) []byte { return append(v, 0) }, "data after the reservation"},
		{"data after a token", bucketTokens, func(v []byte) []byte { return append(v, []byte(`{}`)...) }, "data after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fullDB(t)
			if tt.edit != nil {
				withBolt(t, path, func(tx *bolt.Tx) error {
					b := tx.Bucket(tt.bucket)
					k, v := b.Cursor().First()
					nv := tt.edit(bytes.Clone(v))
					if bytes.Equal(nv, v) {
						t.Fatalf("the edit changed nothing in %s", v)
					}
					return b.Put(k, nv)
				})
			}
			rep, err := Check(path)
			if err != nil {
				t.Fatal(err)
			}
			db, openErr := Open(path, Options{NoSync: true})
			if openErr == nil {
				db.Close()
			}
			if tt.says == "" {
				if !rep.OK() || openErr != nil {
					t.Fatalf("a file this hardcap wrote: problems %q, Open %v; want none", rep.Problems, openErr)
				}
				return
			}
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "; "), tt.says) {
				t.Fatalf("Check found %q, want %q", rep.Problems, tt.says)
			}
			if !errors.Is(openErr, ErrDamaged) {
				t.Fatalf("Open: got %v, want ErrDamaged", openErr)
			}
		})
	}
}

// TestSalvage_SaysWhenNothingWasRecovered: a file cut to its two meta
// pages salvages into an empty ledger, and the report says so rather than
// offering it as a replacement.
func TestSalvage_SaysWhenNothingWasRecovered(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"truncated to 8 KB", func(t *testing.T, path string) {
			if err := os.Truncate(path, 8192); err != nil {
				t.Fatal(err)
			}
		}, "nothing was recovered: restore a backup instead"},
		{"projects and tokens lost", func(t *testing.T, path string) {
			// Records and spend are left, as after losing the pages that
			// held the tenants.
			withBolt(t, path, func(tx *bolt.Tx) error {
				for _, b := range [][]byte{bucketProjects, bucketTokens} {
					c := tx.Bucket(b).Cursor()
					for k, _ := c.First(); k != nil; k, _ = c.First() {
						if err := c.Delete(); err != nil {
							return err
						}
					}
				}
				return nil
			})
		}, "no project and no token was recovered, only"},
		{"sound", func(t *testing.T, path string) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filledDB(t)
			tt.damage(t, path)
			rep, err := Salvage(path, filepath.Join(t.TempDir(), "out.db"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(rep.Warning, tt.want) || (tt.want == "") != (rep.Warning == "") {
				t.Fatalf("warning %q, want %q", rep.Warning, tt.want)
			}
		})
	}
}

// TestOpen_GlobalPeriodChangeKeepsSpend: changing the global budget's
// period in the config between two starts does not hand it a fresh window:
// from 1000 a month with 900 spent today to 500 a day must refuse, and the
// file still passes the charges check at the next start.
func TestOpen_GlobalPeriodChangeKeepsSpend(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "hardcap.db")
	open := func(l budget.Limit) *DB {
		t.Helper()
		db, err := Open(path, Options{Now: c.Now, NoSync: true, OnLow: budget.Reject, Global: l})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open(budget.Ceiling(1000, budget.Month))
	tok := newToken(t, db, "web", budget.NoLimit(""), budget.NoLimit(""))
	res, err := reserve(db, tok, flat(900))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 900}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, l := range []budget.Limit{budget.Ceiling(1000, budget.Day), budget.Ceiling(1000, budget.Total), budget.Ceiling(1000, budget.Week)} {
		db = open(l)
		if _, err := reserve(db, tok, flat(101)); !errors.Is(err, budget.ErrExhausted) {
			t.Fatalf("global %s after 900 spent today: a 101 reservation got %v, want exhausted", l.Period, err)
		}
		db.Close()
	}
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Fatalf("db check after global period changes: %v %v", err, rep.Problems)
	}
}

// TestCheck_ReservationUnderAnotherKey: a reservation filed under a key
// that is not its id would never be deleted by its settlement (which
// deletes by id) and so be charged at every start.
func TestCheck_ReservationUnderAnotherKey(t *testing.T) {
	path := filledDB(t)
	withBolt(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReservations)
		k, v := b.Cursor().First()
		if k == nil {
			t.Fatal("no open reservation to move")
		}
		v = append([]byte(nil), v...)
		if err := b.Delete(k); err != nil {
			return err
		}
		return b.Put([]byte("rzzzzzzzzzz"), v)
	})
	rep, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), `reservation "rzzzzzzzzzz" holds the id`) {
		t.Fatalf("Check found %q, want the moved reservation", rep.Problems)
	}
}
