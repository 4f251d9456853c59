package storage

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// SalvageReport says what Salvage copied and what it could not.
type SalvageReport struct {
	// Copied counts the entries written to the new file, per bucket.
	Copied map[string]int `json:"copied"`
	// Dropped counts readable entries left out because they do not decode
	// (or, for token hashes, name no token), per bucket.
	Dropped map[string]int `json:"dropped"`
	// Unreadable lists the parts of the file that could not be read; their
	// entries are lost.
	Unreadable []string `json:"unreadable"`
	// Rebuilt counts the derived entries Salvage recomputed: spend counters
	// whose reserved amount now matches the copied open reservations, and
	// token hashes rebuilt from their tokens.
	Rebuilt int `json:"rebuilt"`
	// Unrecorded is the spend, in nano-USD, that the copied global spend
	// counters hold but whose usage records were lost; it stays charged
	// and is kept in the meta counter unrecorded_usd.
	Unrecorded budget.Money `json:"unrecorded_usd"`
	// Uncounted is the charge, in nano-USD, of copied usage records whose
	// global spend counters were lost (kept in the meta counter
	// uncounted_usd): the global budget no longer counts it.
	Uncounted budget.Money `json:"uncounted_usd"`
	// Warning is set when the copy holds no ledger worth serving (no
	// project and no token): restore a backup instead.
	Warning string `json:"warning,omitempty"`
}

// Salvage copies every readable entry of the database file src into a new
// file dst, never writing to src. It reads src with bounds-checked reads of
// its own, not through bbolt, so a truncated file or an overwritten page is
// skipped and reported instead of crashing. Entries that do not decode are
// dropped; each spend counter's reserved amount is recomputed from the open
// reservations copied (which the next Open charges in full), and token
// hashes are rebuilt from the tokens, so dst passes Check. Committed spend
// stays as copied: a counter that was unreadable starts again at zero, which
// the report shows and a user must check. What the global counters and the
// copied records no longer agree on is kept in the meta counters
// unrecorded_usd and uncounted_usd (see keepCharges), and a copy with no
// project and no token carries a Warning. dst must not exist (ErrExists).
func Salvage(src, dst string) (SalvageReport, error) {
	rep := SalvageReport{Copied: map[string]int{}, Dropped: map[string]int{}}
	if _, err := os.Lstat(dst); err == nil {
		return rep, fmt.Errorf("storage: %s: %w", dst, ErrExists)
	}
	lock, err := lockFile(src, false, 500*time.Millisecond)
	if err != nil {
		return rep, fmt.Errorf("storage: %s: %w", src, err)
	}
	defer lock.release()
	f, err := os.Open(src)
	if err != nil {
		return rep, fmt.Errorf("storage: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return rep, fmt.Errorf("storage: %w", err)
	}
	metas, metaErr := readMetas(f, info.Size())
	if len(metas) == 0 {
		f.Close()
		return rep, fmt.Errorf("%w: %s: nothing can be read: %v", ErrDamaged, src, metaErr)
	}
	// The newest tree, unless the previous transaction's (one commit
	// older) is readable where the newest is not.
	w, buckets := walkFrom(f, info.Size(), metas[0], true)
	if len(metas) > 1 && len(w.problems) > 0 {
		if w2, b2 := walkFrom(f, info.Size(), metas[1], true); entries(b2) > entries(buckets) {
			w, buckets = w2, b2
			w.problems = append([]string{"the newest transaction's tree is unreadable; copied the previous one's: reservations and settlements of the last commit are missing (requests reserved in it may have been forwarded and are not charged; compare with the provider's bill or hardcap reconcile)"}, w.problems...)
		}
	}
	f.Close()
	if metaErr != nil {
		// The other meta page's tree is read; if the bad one was the newer,
		// its commit is lost.
		w.problems = append([]string{metaErr.Error() + "; copied the tree the other meta page points at: the last commit may be missing"}, w.problems...)
	}
	rep.Unreadable = w.problems
	if w.more > 0 {
		rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("and %d more problems", w.more))
	}
	found := map[string]fileBucket{}
	for _, b := range buckets {
		found[b.name] = b
	}

	tmp := fmt.Sprintf("%s.tmp-%d", dst, os.Getpid())
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	out, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return rep, fmt.Errorf("storage: %w", err)
	}
	err = out.Update(func(tx *bolt.Tx) error { return salvageInto(tx, found, &rep) })
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rep, fmt.Errorf("storage: writing %s: %w", dst, err)
	}
	rep.Warning = emptyWarning(rep.Copied)
	chk, err := Check(tmp)
	if err != nil {
		return rep, err
	}
	if !chk.OK() {
		return rep, fmt.Errorf("storage: the salvaged copy fails its check: %s", summarize(chk.Problems))
	}
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return rep, fmt.Errorf("storage: %s: %w", dst, ErrExists)
		}
		return rep, fmt.Errorf("storage: %w", err)
	}
	return rep, syncDir(filepath.Dir(dst))
}

// salvageInto writes the readable entries into tx, the new file's only
// transaction.
func salvageInto(tx *bolt.Tx, found map[string]fileBucket, rep *SalvageReport) error {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range found {
			if !yield(n) {
				return
			}
		}
	})
	for _, b := range allBuckets {
		if _, ok := found[string(b)]; !ok {
			names = append(names, string(b))
		}
	}
	// The dictionary first: whether a record decodes depends on it.
	if err := salvageStrings(tx, found[string(bucketStrings)], rep); err != nil {
		return err
	}
	dict := newDict(tx)
	valid := map[string]func([]byte) bool{
		"projects":     decodes[tokens.Project],
		"tokens":       decodes[tokens.Token],
		"limits":       decodes[storedLimit],
		"records":      nil, // checked with the key below
		"reservations": func(v []byte) bool { _, err := decodeReservation(nil, v, true); return err == nil },
		"spend":        func(v []byte) bool { return len(v) == 16 },
		"usage_rollup": nil, // checked with the key below
	}
	var rolled budget.Money
	for _, name := range names {
		fb := found[name]
		b, err := tx.CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		if name == string(bucketStrings) {
			// salvageStrings set the sequence past every id it kept;
			// the header's, which may be older, must not undo that.
			continue
		}
		if err := b.SetSequence(fb.sequence); err != nil {
			return err
		}
		if name == "token_hashes" || derivedFromRecords(name) {
			// Rebuilt below: the hashes from the tokens, which hold them;
			// the dictionary above; the indexes and hour totals from the
			// records copied.
			continue
		}
		ok := valid[name]
		if name == string(bucketRecords) {
			ok = nil
		}
		for _, e := range fb.entries {
			if len(e.key) == 0 || len(e.key) > bolt.MaxKeySize {
				// A damaged leaf's key: bbolt would refuse to write it.
				rep.Dropped[name]++
				continue
			}
			value := e.value
			switch name {
			case string(bucketRecords):
				rec, err := decodeRecord(dict, e.key, e.value, true)
				if err != nil {
					rep.Dropped[name]++
					continue
				}
				if len(value) == 0 || value[0] != recordV1 {
					// A JSON record (format 1, or a file whose format
					// was lost) is written in the binary form, so the
					// copy is the format 2 it is marked below.
					if value, err = encodeRecord(tx, nil, rec, &recordIDs{}); err != nil {
						return err
					}
				}
			case string(bucketRollup):
				// A row that does not decode, names a string the
				// dictionary lost or would overflow the sum is dropped;
				// keepCharges then counts its charge in unrecorded_usd,
				// as for a lost record.
				r, ok := decodeRollup(dict, e.key, e.value)
				sum, err := rolled.Add(r.charged)
				if !ok || r.charged < 0 || err != nil {
					rep.Dropped[name]++
					continue
				}
				rolled = sum
			}
			if ok != nil && !ok(e.value) {
				rep.Dropped[name]++
				continue
			}
			if err := b.Put(e.key, value); err != nil {
				return err
			}
			rep.Copied[name]++
		}
	}
	if meta := tx.Bucket(bucketMeta); formatOf(meta) < FormatVersion {
		// Every record copied is in the binary form and reindexRecords
		// writes the indexes and totals: the copy is format 2 whatever the
		// file said (nothing, a version-1 mark, a migration half done).
		if err := meta.Put(metaFormat, []byte(strconv.Itoa(FormatVersion))); err != nil {
			return err
		}
		if err := meta.Delete(metaMigrated); err != nil {
			return err
		}
	}
	if err := reindexRecords(tx); err != nil {
		return err
	}
	return rebuild(tx, found["token_hashes"], rep)
}

// decodes reports whether v decodes as Check decodes it, so that what
// Salvage copies passes Check.
func decodes[T any](v []byte) bool {
	var x T
	return decodeStrict(v, &x) == nil
}

// rebuild recomputes what can be derived: the token hash index from the
// tokens, and each spend counter's reserved amount from the open
// reservations.
func rebuild(tx *bolt.Tx, oldHashes fileBucket, rep *SalvageReport) error {
	hashes := tx.Bucket(bucketTokenHashes)
	n := 0
	err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		var t tokens.Token
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		// The secret a rotation replaced too, so that it keeps its grace
		// and is told it was rotated, not unknown.
		if p, err := hex.DecodeString(t.PrevHash); err == nil && len(p) == 32 {
			n++
			if err := hashes.Put(p, k); err != nil {
				return err
			}
		}
		h, err := hex.DecodeString(t.Hash)
		if err != nil || len(h) != 32 {
			return nil // Authenticate can never match it anyway.
		}
		n++
		return hashes.Put(h, k)
	})
	if err != nil {
		return err
	}
	rep.Copied["token_hashes"] = n
	if n := len(oldHashes.entries) - rep.Copied["token_hashes"]; n > 0 {
		rep.Dropped["token_hashes"] = n
	} else if n < 0 {
		rep.Rebuilt += -n
	}

	held := map[string]budget.Money{}
	rb := tx.Bucket(bucketReservations)
	seq := rb.Sequence()
	idSeq := func(id string) {
		if len(id) > 1 && id[0] == 'r' {
			if n, err := strconv.ParseUint(id[1:], 36, 64); err == nil {
				seq = max(seq, n)
			}
		}
	}
	err = rb.ForEach(func(k, v []byte) error {
		res, err := decodeReservation(k, v, false)
		if err != nil {
			return err
		}
		idSeq(res.ID)
		for _, key := range res.Keys {
			held[key] += res.Amount
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Reservation ids must stay unique even when the bucket's sequence
	// was lost with its header: start after every id still on record.
	_ = tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
		if len(k) > 8 {
			idSeq(string(k[8:]))
		}
		return nil
	})
	if err := rb.SetSequence(seq); err != nil {
		return err
	}
	if err := keepCharges(tx, rep); err != nil {
		return err
	}
	var keys []string
	_ = tx.Bucket(bucketSpend).ForEach(func(k, v []byte) error {
		keys = append(keys, string(k))
		return nil
	})
	for k := range held {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		sp := getSpend(tx, k)
		if sp.Reserved == held[k] && tx.Bucket(bucketSpend).Get([]byte(k)) != nil {
			continue
		}
		sp.Reserved = held[k]
		if err := putSpend(tx, k, sp); err != nil {
			return err
		}
		rep.Rebuilt++
	}
	return nil
}

// keepCharges makes checkCharges hold in the copy: what the global spend
// counters hold beyond the copied records' charges is added to the meta
// counter unrecorded_usd (records lost), and what the records charge beyond
// the counters to uncounted_usd (counters lost). Counters and records of
// the open reservations need nothing: the next Open settles them, which
// adds to both sides.
func keepCharges(tx *bolt.Tx, rep *SalvageReport) error {
	recorded, err := chargedSince(tx, time.Time{}, nil)
	if err != nil {
		return err
	}
	committed, err := globalCommitted(tx)
	if err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	for _, k := range [][]byte{metaUnrecorded, metaUncounted} {
		if v := meta.Get(k); v != nil && (len(v) != 8 || int64(getCounter(meta, k)) < 0) {
			// Unreadable: start again from what the copy holds.
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
	}
	c := committed + budget.Money(getCounter(meta, metaUncounted))
	r := recorded + budget.Money(getCounter(meta, metaUnrecorded))
	switch {
	case c > r:
		rep.Unrecorded = c - r
		return addCounter(meta, metaUnrecorded, uint64(c-r))
	case r > c:
		rep.Uncounted = r - c
		return addCounter(meta, metaUncounted, uint64(r-c))
	}
	return nil
}

// emptyWarning says when a copy holds no ledger to serve: with no project
// and no token nobody can spend through it, and putting it in place of the
// damaged file would forget every tenant. A sound file with no project
// warns too; restoring a backup is then harmless advice.
func emptyWarning(copied map[string]int) string {
	if copied["projects"] > 0 || copied["tokens"] > 0 {
		return ""
	}
	var kept []string
	for _, name := range slices.Sorted(maps.Keys(copied)) {
		if c := copied[name]; c > 0 && name != "meta" {
			kept = append(kept, fmt.Sprintf("%d %s", c, name))
		}
	}
	if len(kept) == 0 {
		return "nothing was recovered: restore a backup instead"
	}
	return fmt.Sprintf("no project and no token was recovered, only %s: restore a backup instead", strings.Join(kept, ", "))
}

// entries counts the entries of buckets.
func entries(buckets []fileBucket) int {
	n := 0
	for _, b := range buckets {
		n += b.count
	}
	return n
}
