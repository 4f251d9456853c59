package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FormatVersion is the layout version hardcap writes into the meta bucket.
// A file without one was written before versions were recorded, has the
// same layout, and counts as version 1; Open writes the version into it.
//
// Version 2 stores usage records in a binary form with interned strings,
// indexes by token and project, and hour totals (see records.go); Open
// migrates a version-1 file's JSON records (see migrateRecords).
const FormatVersion = 2

// v1Buckets are the buckets every version-1 file has; a file without one of
// them is damaged. Buckets added later are not listed here: Open creates
// them in older files.
var v1Buckets = []string{"projects", "tokens", "token_hashes", "limits", "spend", "reservations", "records", "meta"}

// Report is what Check found in a database file.
type Report struct {
	// Path is the file checked.
	Path string `json:"path"`
	// Bytes is the file's size.
	Bytes int64 `json:"bytes"`
	// Format is the layout version (1 for files that predate versions).
	Format int `json:"format"`
	// Entries counts the entries of each bucket.
	Entries map[string]int `json:"entries"`
	// Problems says what is wrong, one line each; empty means the file is
	// sound.
	Problems []string `json:"problems"`
}

// OK reports whether the check found nothing wrong.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Check examines the database file at path without changing it: its
// structure (both meta pages and every page of the tree and the freelist,
// read with bounds checks, so a damaged file cannot crash the check),
// bbolt's own consistency check, the format version, the buckets, the
// strict encoding of every entry, token hashes against tokens, the spend
// counters against the open reservations, and the global spend counters
// against the records' charges (see checkCharges), and the hour totals and
// indexes queries read against the records (see checkRecordTotals and
// indexCheck). It takes a shared lock, so it
// returns ErrLocked while a server holds the file. Its error says only that
// it could not check; what is wrong with the file is in Report.Problems.
func Check(path string) (Report, error) {
	rep := Report{Path: path, Entries: map[string]int{}}
	info, err := os.Stat(path)
	if err != nil {
		return rep, fmt.Errorf("storage: %w", err)
	}
	rep.Bytes = info.Size()
	lock, err := lockFile(path, false, 500*time.Millisecond)
	if err != nil {
		return rep, fmt.Errorf("storage: %s: %w", path, err)
	}
	defer lock.release()
	if rep.Bytes == 0 {
		rep.Problems = []string{"the file is empty (0 bytes)"}
		return rep, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("storage: %w", err)
	}
	w, buckets, err := walkFile(f, rep.Bytes, false)
	f.Close()
	if err != nil {
		rep.Problems = []string{err.Error()}
		return rep, nil
	}
	for _, b := range buckets {
		rep.Entries[b.name] = b.count
	}
	if len(w.problems) > 0 {
		rep.Problems = w.problems
		if w.more > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("and %d more problems", w.more))
		}
		return rep, nil
	}
	var bdb *bolt.DB
	err = guard("opening "+path, func() error {
		var err error
		bdb, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return rep, fmt.Errorf("storage: %s: %w", path, ErrLocked)
	}
	if err != nil {
		rep.Problems = []string{err.Error()}
		return rep, nil
	}
	defer func() { _ = guard("closing", bdb.Close) }()
	err = guard("checking "+path, func() error {
		return bdb.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				rep.Problems = appendProblem(rep.Problems, "bbolt check: "+err.Error())
			}
			var err error
			rep.Format, rep.Problems, err = checkLedger(tx, true, rep.Problems)
			return err
		})
	})
	if err != nil {
		rep.Problems = appendProblem(rep.Problems, err.Error())
	}
	return rep, nil
}

// checkFile walks the structure of the file at path before bbolt maps it.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	w, _, err := walkFile(f, info.Size(), false)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	if s := w.summary(); s != "" {
		return fmt.Errorf("%w: %s: %s", ErrDamaged, path, s)
	}
	return nil
}

// checkLedger runs hardcap's own checks in tx and appends what is wrong to
// problems: the format version, the buckets, and each spend counter's
// reserved amount against the open reservations holding it (which recovery
// is about to charge, so they must be right). deep also decodes every entry
// strictly, checks every token hash and the charges (checkCharges). The
// error is ErrNewerFormat, or nil.
func checkLedger(tx *bolt.Tx, deep bool, problems []string) (int, []string, error) {
	for _, name := range v1Buckets {
		if tx.Bucket([]byte(name)) == nil {
			problems = appendProblem(problems, fmt.Sprintf("bucket %q is missing", name))
		}
	}
	if len(problems) > 0 {
		return 0, problems, nil
	}
	format := 1
	if v := tx.Bucket(bucketMeta).Get(metaFormat); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 {
			return 0, appendProblem(problems, fmt.Sprintf("the format version %q is not a version", truncate(v))), nil
		}
		if n > FormatVersion {
			return n, problems, fmt.Errorf("%w: format %d, this hardcap reads up to %d", ErrNewerFormat, n, FormatVersion)
		}
		format = n
	}

	held := map[string]budget.Money{}
	err := tx.Bucket(bucketReservations).ForEach(func(k, v []byte) error {
		res, err := decodeReservation(k, v, true)
		if err != nil {
			problems = appendProblem(problems, fmt.Sprintf("reservation %q does not decode: %v", truncate(k), err))
			return nil
		}
		if res.ID != string(k) {
			// Settling deletes the entry by the id it holds: a mismatch
			// would leave it open, to be charged again at every start.
			problems = appendProblem(problems, fmt.Sprintf("reservation %q holds the id %q", truncate(k), truncate([]byte(res.ID))))
		}
		if n := globalKeys(res.Keys); n != 1 {
			// Settling it would charge the global counters n times, not
			// once, and break the sum checkCharges verifies.
			problems = appendProblem(problems, fmt.Sprintf("reservation %q holds %d global spend counters, want 1", truncate(k), n))
		}
		for _, key := range res.Keys {
			held[key] += res.Amount
		}
		return nil
	})
	if err != nil {
		return format, problems, err
	}
	_ = tx.Bucket(bucketSpend).ForEach(func(k, v []byte) error {
		if len(v) != 16 {
			problems = appendProblem(problems, fmt.Sprintf("spend counter %q is %d bytes, want 16", truncate(k), len(v)))
			return nil
		}
		if sp := getSpend(tx, string(k)); sp.Committed < 0 || sp.Reserved < 0 {
			// Money is never negative; a negative counter (a flipped top bit)
			// would hand its budget headroom it does not have.
			problems = appendProblem(problems, fmt.Sprintf("spend counter %q is negative (committed %s, reserved %s USD)", truncate(k), sp.Committed, sp.Reserved))
		}
		if got, want := getSpend(tx, string(k)).Reserved, held[string(k)]; got != want {
			problems = appendProblem(problems, fmt.Sprintf("spend counter %q holds %s USD reserved but its open reservations hold %s USD", truncate(k), got, want))
		}
		delete(held, string(k))
		return nil
	})
	for key, amount := range held {
		problems = appendProblem(problems, fmt.Sprintf("open reservations hold %s USD in spend counter %q, which is missing", amount, truncate([]byte(key))))
	}
	if !deep {
		return format, problems, nil
	}

	decoders := []struct {
		bucket []byte
		v      func() any
	}{
		{bucketProjects, func() any { return new(tokens.Project) }},
		{bucketTokens, func() any { return new(tokens.Token) }},
		// The stored form, not budget.Limit's API form: see storedLimit.
		{bucketLimits, func() any { return new(storedLimit) }},
	}
	var recorded budget.Money
	overflow := false
	for _, d := range decoders {
		_ = tx.Bucket(d.bucket).ForEach(func(k, v []byte) error {
			x := d.v()
			if err := decodeStrict(v, x); err != nil {
				problems = appendProblem(problems, fmt.Sprintf("%s entry %q does not decode: %v", d.bucket, truncate(k), err))
				return nil
			}
			return nil
		})
	}
	d := newDict(tx)
	records := 0
	idx := newIndexCheck()
	_ = tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
		if format >= 2 && (len(v) == 0 || v[0] != recordV1) {
			// Format 2 files hold only the binary form: migrateRecords
			// rewrote every JSON record before it wrote the version.
			problems = appendProblem(problems, fmt.Sprintf("%s entry %q is not in the binary form of format %d", bucketRecords, truncate(k), format))
			return nil
		}
		rec, err := decodeRecord(d, k, v, true)
		if err != nil {
			problems = appendProblem(problems, fmt.Sprintf("%s entry %q does not decode: %v", bucketRecords, truncate(k), err))
			return nil
		}
		records++
		if format >= 2 {
			idx.record(tx, rec)
		}
		if recorded, err = recorded.Add(rec.Charged); err != nil || rec.Charged < 0 {
			overflow = true
		}
		return nil
	})
	// Records rolled up past the retention are records still.
	rolledN, rolled, err := rolledCharges(tx)
	if err != nil {
		problems = appendProblem(problems, fmt.Sprintf("%s: %v", bucketRollup, err))
	} else if recorded, err = recorded.Add(rolled); err != nil {
		overflow = true
	}
	records += int(rolledN)
	if overflow {
		problems = appendProblem(problems, "the records' charges are negative or overflow")
	} else {
		problems = checkCharges(tx, recorded, problems)
		if format >= 2 {
			problems = checkRecordTotals(tx, records, recorded, problems)
			problems = idx.check(tx, problems)
		}
	}
	toks := tx.Bucket(bucketTokens)
	_ = tx.Bucket(bucketTokenHashes).ForEach(func(k, v []byte) error {
		if len(k) != 32 || toks.Get(v) == nil {
			problems = appendProblem(problems, fmt.Sprintf("token hash %x names token %q, which is missing", k, truncate(v)))
		}
		return nil
	})
	return format, problems, nil
}

// checkCharges checks that the global spend counters hold exactly the
// charges of the usage records. Every reservation holds one global counter
// (reserve lists the global budget first), and settle adds the charge to
// each of its counters and writes the record in the same transaction
// (recovery settles too); nothing else changes a global counter's
// committed amount (carrySpend touches only project and token scopes) and
// no record is ever deleted. So the sums are equal in every file hardcap
// wrote, and a changed charge or counter shows. Salvage, which can lose
// records or counters, writes what it lost to the meta counters
// unrecorded_usd and uncounted_usd to keep the sum.
func checkCharges(tx *bolt.Tx, recorded budget.Money, problems []string) []string {
	meta := tx.Bucket(bucketMeta)
	for _, k := range [][]byte{metaUnrecorded, metaUncounted} {
		if v := meta.Get(k); v != nil && (len(v) != 8 || int64(getCounter(meta, k)) < 0) {
			return appendProblem(problems, fmt.Sprintf("meta counter %q is %d bytes or negative", k, len(v)))
		}
	}
	unrecorded := budget.Money(getCounter(meta, metaUnrecorded))
	uncounted := budget.Money(getCounter(meta, metaUncounted))
	committed, err0 := globalCommitted(tx)
	c, err1 := committed.Add(uncounted)
	r, err2 := recorded.Add(unrecorded)
	if err0 != nil || err1 != nil || err2 != nil {
		return appendProblem(problems, "the global spend counters overflow")
	}
	if c != r {
		return appendProblem(problems, fmt.Sprintf("the global spend counters hold %s USD committed but the usage records charge %s USD", c, r))
	}
	return problems
}

// globalKeys counts the global scope's spend counters among keys.
func globalKeys(keys []string) int {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, string(budget.GlobalScope)+"|") {
			n++
		}
	}
	return n
}

// decodeStrict decodes the JSON entry v into dst and fails on a field dst
// does not have and on anything after the value. json.Unmarshal ignores
// unknown fields, so one flipped bit in a name ("killed" to "killsd")
// would silently drop the field's value: a kill switch undone.
func decodeStrict(v []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// appendProblem adds p to problems unless there are enough already.
func appendProblem(problems []string, p string) []string {
	if len(problems) == maxProblems {
		return append(problems, "more problems not listed")
	}
	if len(problems) > maxProblems {
		return problems
	}
	return append(problems, strings.ReplaceAll(p, "\n", " "))
}

// summarize is problems in one line: the first, and how many more.
func summarize(problems []string) string {
	if len(problems) == 1 {
		return problems[0]
	}
	return fmt.Sprintf("%s (and %d more problems)", problems[0], len(problems)-1)
}

// checkRecordTotals checks what queries read instead of the records: the
// hour totals of every record must count and charge what the records do,
// and the dictionary's two directions must agree. A query answered from a
// spoiled total would report spend that is not on record.
func checkRecordTotals(tx *bolt.Tx, records int, recorded budget.Money, problems []string) []string {
	var n uint64
	var sum budget.Money
	c := tx.Bucket(bucketUsageHours).Cursor()
	for k, v := c.Seek([]byte{scopeAll}); k != nil && k[0] == scopeAll; k, v = c.Next() {
		if len(k) != 9 || len(v) != 16 {
			return appendProblem(problems, fmt.Sprintf("hour total %x is %d bytes, want 16", k, len(v)))
		}
		cnt, ch := hourTotal(v)
		n += cnt
		sum += ch
	}
	if n != uint64(records) || sum != recorded {
		problems = appendProblem(problems, fmt.Sprintf("the hour totals count %d records charging %s USD but the records are %d charging %s USD", n, sum, records, recorded))
	}
	b := tx.Bucket(bucketStrings)
	_ = b.ForEach(func(k, v []byte) error {
		if len(k) == 5 && k[0] == 'i' && bytes.Equal(b.Get(append([]byte{'s'}, v...)), k[1:]) {
			return nil
		}
		if len(k) > 1 && k[0] == 's' && len(v) == 4 && string(b.Get(append([]byte{'i'}, v...))) == string(k[1:]) {
			return nil
		}
		problems = appendProblem(problems, fmt.Sprintf("string dictionary entry %q does not match its pair", truncate(k)))
		return nil
	})
	return problems
}

// indexCheck checks the indexes and the projects' hour totals against the
// records (format 2): a token's totals are summed from its index entries'
// charges and a project's from its hour totals, so a spoiled entry would
// report spend that is not on record, or hide spend that is. It compares
// sums per token and project, walking each index in key order, so that a
// start (Open checks deeply) pays two map updates a record and no lookup.
type indexCheck struct {
	ids map[string]indexed
	// need are the records' counts and charges per index (token,
	// project) and string id.
	need [2]map[uint32]hourCount
}

type indexed struct {
	id uint32
	ok bool
}

type hourCount struct {
	n   uint64
	sum budget.Money
}

func (h hourCount) add(n uint64, charged budget.Money) hourCount {
	return hourCount{h.n + n, h.sum + charged}
}

func newIndexCheck() *indexCheck {
	return &indexCheck{ids: map[string]indexed{}, need: [2]map[uint32]hourCount{{}, {}}}
}

// indexedID is the id under which putRecord indexed s: an interned string
// (see appendString); ok is false for one it wrote inline, and for "".
func (c *indexCheck) indexedID(tx *bolt.Tx, s string) (uint32, bool) {
	if s == "" || len(s) > maxInterned {
		return 0, false
	}
	x, seen := c.ids[s]
	if !seen {
		x.id, x.ok = lookupID(tx, s)
		c.ids[s] = x
	}
	return x.id, x.ok
}

// record counts the record in what the indexes must hold.
func (c *indexCheck) record(tx *bolt.Tx, rec budget.Record) {
	for i, s := range []string{rec.TokenID, rec.Project} {
		if id, ok := c.indexedID(tx, s); ok {
			c.need[i][id] = c.need[i][id].add(1, max(rec.Charged, 0))
		}
	}
}

// check compares what the records need with the indexes and the projects'
// hour totals.
func (c *indexCheck) check(tx *bolt.Tx, problems []string) []string {
	d := newDict(tx)
	compare := func(what string, got, want map[uint32]hourCount) {
		for _, id := range slices.Sorted(maps.Keys(want)) {
			if g, w := got[id], want[id]; g != w {
				name, _ := d.str(id)
				problems = appendProblem(problems, fmt.Sprintf("the %s %q count %d records charging %s USD but its records are %d charging %s USD", what, truncate([]byte(name)), g.n, g.sum, w.n, w.sum))
			}
			delete(got, id)
		}
		for _, id := range slices.Sorted(maps.Keys(got)) {
			problems = appendProblem(problems, fmt.Sprintf("the %s string id %d count %d records, but no record is its", what, id, got[id].n))
		}
	}
	for i, b := range [][]byte{bucketByToken, bucketByProject} {
		got := map[uint32]hourCount{}
		ic := tx.Bucket(b).Cursor()
		for k, v := ic.First(); k != nil; k, v = ic.Next() {
			ch, w := binary.Uvarint(v)
			if len(k) < 4+9 || w <= 0 || w != len(v) {
				problems = appendProblem(problems, fmt.Sprintf("%s entry %x does not decode", b, truncate(k)))
				continue
			}
			id := binary.BigEndian.Uint32(k)
			got[id] = got[id].add(1, budget.Money(ch))
		}
		compare(string(b)+" entries of", got, c.need[i])
	}
	want := maps.Clone(c.need[1])
	rc := tx.Bucket(bucketRollup).Cursor()
	for k, v := rc.First(); k != nil; k, v = rc.Next() {
		if len(k) != 24 || len(v) != 16 {
			continue // rolledCharges reports it
		}
		if id := binary.BigEndian.Uint32(k[8:]); id != 0 {
			n, ch := hourTotal(v)
			want[id] = want[id].add(n, ch)
		}
	}
	got := map[uint32]hourCount{}
	hc := tx.Bucket(bucketUsageHours).Cursor()
	for k, v := hc.Seek([]byte{scopeProject}); k != nil && k[0] == scopeProject; k, v = hc.Next() {
		if len(k) != 9 || len(v) != 16 {
			problems = appendProblem(problems, fmt.Sprintf("hour total %x is %d bytes, want 16", k, len(v)))
			continue
		}
		n, ch := hourTotal(v)
		id := binary.BigEndian.Uint32(k[1:5])
		got[id] = got[id].add(n, ch)
	}
	compare("hour totals of project", got, want)
	return problems
}
