package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// Retention: usage records older than Options.Retention are rolled up into
// daily totals and deleted, whole UTC days at a time, so the history stops
// growing with every request ever made. What totals and budgets read keeps
// counting them:
//
//   - the hour totals (bucketUsageHours) are never touched, so Usage's
//     totals over every record or a project's are unchanged;
//   - a token's totals add its rollup rows to its index entries;
//   - chargedSince (budgets, on a change of period) adds the rollup rows,
//     and checkCharges counts them as records.
//
// Within the rolled-up past a since that falls inside a day counts that
// whole day (an hour, for totals over every record or a project): rolled-up
// history has that granularity, and for a budget counting more is the safe
// side.
var (
	// bucketRollup holds the rolled-up days: token id, day (days since
	// the epoch, 4 bytes each), project, provider, model, outcome (string
	// ids, 4 bytes each) -> records (8 bytes) and charged nano-USD (8).
	// Token first, so a token's rows are one cursor range.
	bucketRollup = []byte("usage_rollup")
	// metaRolledUp is the end (ns, 8 bytes) of the history rolled up:
	// every record before it is in bucketRollup. rollUp moves it with
	// each batch; Daily watches it to notice a batch beside it.
	metaRolledUp = []byte("rolled_up_until")
)

// rollupBatch is how many records one compaction transaction rolls up: it
// runs through the writer beside requests, so it stays short.
var rollupBatch = 1000

// DefaultRetention is the usage retention of hardcap serve when the config
// names none: 400 days, over a year of records for reconciling invoices.
const DefaultRetention = 400 * 24 * time.Hour

// rollupRow is one decoded rollup entry.
type rollupRow struct {
	day                                  uint32
	token, project, provider, model, out string
	n                                    uint64
	charged                              budget.Money
}

func dayOf(ns int64) uint32 {
	return uint32(min(max(ns/int64(24*time.Hour), 0), 1<<32-1))
}

// decodeRollup reads a rollup entry; ok is false for one that is not.
func decodeRollup(d *dict, k, v []byte) (rollupRow, bool) {
	if len(k) != 24 || len(v) != 16 {
		return rollupRow{}, false
	}
	id := func(i int) (string, bool) { return d.str(binary.BigEndian.Uint32(k[i:])) }
	r := rollupRow{day: binary.BigEndian.Uint32(k[4:])}
	ok := true
	for i, dst := range []*string{&r.token, nil, &r.project, &r.provider, &r.model, &r.out} {
		if dst == nil {
			continue
		}
		s, found := id(4 * i)
		ok = ok && found
		*dst = s
	}
	r.n, r.charged = hourTotal(v)
	return r, ok
}

// rolledUpUntil is where the rolled-up history ends; zero when none is.
func rolledUpUntil(tx *bolt.Tx) time.Time {
	if v := tx.Bucket(bucketMeta).Get(metaRolledUp); len(v) == 8 {
		return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
	}
	return time.Time{}
}

// Compact rolls up the usage records that ended before now minus
// retention (down to a whole UTC day), in write transactions of rollupBatch
// records through the writer, so a request waits at most one small batch.
// It returns how many records it rolled up. retention <= 0 rolls up
// nothing.
func (db *DB) Compact(ctx context.Context, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	cutoff := db.now().Add(-retention).UTC().Truncate(24 * time.Hour)
	total := 0
	for {
		n, more := 0, false
		err := db.update(ctx, func(tx *bolt.Tx) error {
			var err error
			n, more, err = rollUp(tx, cutoff, rollupBatch)
			// Fatal: a batch that failed half way must not commit with
			// the requests' operations beside it (see fatalError).
			return fatal(err)
		})
		total += n
		if err != nil || !more {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// retain runs Compact at start and then every interval until the DB
// closes, with the retention of the moment (none while it is zero); a
// failure is logged and tried again at the next interval.
func (db *DB) retain(interval time.Duration) {
	for {
		// Read each time: SetRetention changes it; zero keeps everything.
		if retention := time.Duration(db.retention.Load()); retention > 0 {
			if n, err := db.Compact(background, retention); err != nil {
				if errors.Is(err, ErrClosed) {
					return
				}
				db.log.Error().Err(err).Msg("rolling up old usage records failed; retried later")
			} else if n > 0 {
				db.log.Info().Int("records", n).Dur("retention", retention).Msg("rolled up old usage records into daily totals")
			}
		}
		select {
		case <-time.After(interval):
		case <-db.writerDone:
			return
		}
	}
}

// rollUp moves up to limit records that ended before cutoff into the
// rollup; more says whether such records remain.
func rollUp(tx *bolt.Tx, cutoff time.Time, limit int) (n int, more bool, err error) {
	end := timeKey(cutoff)
	d := newDict(tx)
	type old struct {
		k   []byte
		rec budget.Record
	}
	var batch []old
	c := tx.Bucket(bucketRecords).Cursor()
	k, v := c.First()
	for ; k != nil && bytes.Compare(k, end) < 0 && len(batch) < limit; k, v = c.Next() {
		rec, err := decodeRecord(d, k, v, false)
		if err != nil {
			return 0, false, err
		}
		batch = append(batch, old{bytes.Clone(k), rec})
	}
	more = k != nil && bytes.Compare(k, end) < 0
	rb := tx.Bucket(bucketRollup)
	rb.FillPercent = indexFill
	for _, o := range batch {
		ids := [5]uint32{}
		for i, s := range []string{o.rec.TokenID, o.rec.Project, o.rec.Provider, o.rec.Model, string(o.rec.Outcome)} {
			if ids[i], err = intern(tx, rollupString(s)); err != nil {
				return 0, false, err
			}
		}
		key := binary.BigEndian.AppendUint32(nil, ids[0])
		key = binary.BigEndian.AppendUint32(key, dayOf(o.rec.Time.UnixNano()))
		for _, id := range ids[1:] {
			key = binary.BigEndian.AppendUint32(key, id)
		}
		cnt, sum := hourTotal(rb.Get(key))
		var val [16]byte
		binary.BigEndian.PutUint64(val[:8], cnt+1)
		binary.BigEndian.PutUint64(val[8:], uint64(sum+max(o.rec.Charged, 0)))
		if err := rb.Put(key, val[:]); err != nil {
			return 0, false, err
		}
		if err := tx.Bucket(bucketRecords).Delete(o.k); err != nil {
			return 0, false, err
		}
		for _, ix := range []struct {
			bucket []byte
			s      string
		}{{bucketByToken, o.rec.TokenID}, {bucketByProject, o.rec.Project}} {
			if id, ok := lookupID(tx, ix.s); ok && ix.s != "" {
				if err := tx.Bucket(ix.bucket).Delete(append(idPrefix(id), o.k...)); err != nil {
					return 0, false, err
				}
			}
		}
	}
	// The mark moves with each batch, in its transaction: a query whose
	// since falls in an hour this batch rolled up must read that hour's
	// totals, not the records left of it. Past the last record rolled
	// (every record rolled is before it; only one at its very nanosecond
	// may be left, and that hour's totals count it anyway), or at the
	// cutoff once none is left.
	mark := cutoff
	if more && len(batch) > 0 {
		mark = batch[len(batch)-1].rec.Time.Add(time.Nanosecond)
	}
	if (more && len(batch) == 0) || !rolledUpUntil(tx).Before(mark) {
		return len(batch), more, nil
	}
	if err := tx.Bucket(bucketMeta).Put(metaRolledUp, timeKey(mark)); err != nil {
		return 0, false, err
	}
	return len(batch), more, nil
}

// rollupString is s as a rollup row names it. A rollup key holds string
// ids only, so a string too long to intern (see maxInterned: a model name a
// client made up, up to the size of a request) is rolled up under its
// first bytes and a hash of the whole: interned within the limit, so the
// dictionary's keys stay below bbolt's and Salvage keeps it, and two long
// names still roll up apart.
func rollupString(s string) string {
	if len(s) <= maxInterned {
		return s
	}
	h := sha256.Sum256([]byte(s))
	tag := "…#" + hex.EncodeToString(h[:8])
	n := maxInterned - len(tag)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // whole characters only
	}
	return s[:n] + tag
}

// eachRollup calls fn with every rollup row of days at or after since's
// (every row for the zero time), of one token when token is set.
func eachRollup(tx *bolt.Tx, token string, since time.Time, fn func(rollupRow) error) error {
	b := tx.Bucket(bucketRollup)
	if b == nil {
		return nil
	}
	from := uint32(0)
	if !since.IsZero() {
		from = dayOf(since.UnixNano())
	}
	d := newDict(tx)
	c := b.Cursor()
	var prefix []byte
	k, v := c.First()
	if token != "" {
		id, ok := lookupID(tx, token)
		if !ok {
			return nil
		}
		prefix = idPrefix(id)
		k, v = c.Seek(binary.BigEndian.AppendUint32(bytes.Clone(prefix), from))
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, ok := decodeRollup(d, k, v)
		if !ok {
			return errRollup
		}
		if r.day < from {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// rolledCharges sums the charges of every rollup row.
func rolledCharges(tx *bolt.Tx) (n uint64, sum budget.Money, err error) {
	err = eachRollup(tx, "", time.Time{}, func(r rollupRow) error {
		n += r.n
		var err error
		sum, err = sum.Add(r.charged)
		return err
	})
	return n, sum, err
}
