package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// RecordFilter selects usage records. Empty fields select everything.
type RecordFilter struct {
	Project string
	TokenID string
	// Since drops records that ended before it.
	Since time.Time
	// Limit, when positive, keeps only the newest Limit records (older
	// than Cursor, when set); the totals still cover every record selected.
	Limit int
	// Cursor is an earlier answer's NextCursor: only records older than
	// the oldest record that answer returned are returned. It is opaque.
	Cursor string
}

func (f RecordFilter) match(r budget.Request) bool {
	return (f.Project == "" || r.Project == f.Project) && (f.TokenID == "" || r.TokenID == f.TokenID)
}

// Usage is a selection of usage records with its totals.
type Usage struct {
	// Spent is the sum of the records' charges, in nano-USD.
	Spent budget.Money `json:"spent_usd"`
	// Reserved is the sum of the open reservations the filter selects.
	Reserved budget.Money `json:"reserved_usd"`
	// Matched counts the records the filter selects, before Limit and
	// Cursor.
	Matched int `json:"matched"`
	// NextCursor, when set, is the Cursor that asks for the records older
	// than these: Limit cut the selection short.
	NextCursor string `json:"next_cursor,omitempty"`
	// Records are the settled requests, oldest first: the newest Limit of
	// them when the filter has a Limit.
	Records []budget.Record `json:"records"`
}

// streamPage is how many index or record entries one read transaction of
// StreamUsage visits. Small, so that the writer's remap when the file grows
// never waits long for a reader (a read transaction holds bbolt's mmap
// lock), and a page of records is all an export holds in memory.
var streamPage = 512

// plan is where a filter's records are: a key range of the records bucket
// or of one index.
type plan struct {
	bucket []byte // bucketRecords or an index bucket
	prefix []byte // the index key prefix; nil for records
	kind   byte   // the hour totals' scope
	id     uint32
	both   bool // token and project: the token's index, each record's project checked
	none   bool // the filter names a token or project no record names
	lo     []byte
	// hi is the exclusive end of the range the records come from (the
	// cursor's position, or the end of the prefix); end is the same
	// without the cursor, for the totals. nil is no end.
	hi, end []byte
}

// timeKey is a record key's time part.
func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

// makePlan chooses where f's records are.
func makePlan(tx *bolt.Tx, f RecordFilter) (plan, error) {
	p := plan{bucket: bucketRecords, kind: scopeAll}
	var cursor []byte
	if f.Cursor != "" {
		c, err := hex.DecodeString(f.Cursor)
		if err != nil || len(c) < 9 || len(c) > 64 {
			return p, fmt.Errorf("%w: %q", ErrBadCursor, budget.Clip(f.Cursor))
		}
		cursor = c
	}
	switch {
	case f.TokenID != "":
		p.bucket, p.kind = bucketByToken, scopeToken
		p.id, p.both = 0, f.Project != ""
		id, ok := lookupID(tx, f.TokenID)
		p.id, p.none = id, !ok
	case f.Project != "":
		p.bucket, p.kind = bucketByProject, scopeProject
		id, ok := lookupID(tx, f.Project)
		p.id, p.none = id, !ok
	}
	if p.kind != scopeAll {
		p.prefix = idPrefix(p.id)
		if p.id < 1<<32-1 {
			p.end = idPrefix(p.id + 1)
		}
	}
	p.lo = append(bytes.Clone(p.prefix), timeKey(f.Since)...)
	if f.Since.IsZero() {
		p.lo = bytes.Clone(p.prefix)
	}
	p.hi = p.end
	if cursor != nil {
		p.hi = append(bytes.Clone(p.prefix), cursor...)
	}
	return p, nil
}

// in reports whether k is in [lo, hi).
func in(k, lo, hi []byte) bool {
	return k != nil && bytes.Compare(k, lo) >= 0 && (hi == nil || bytes.Compare(k, hi) < 0)
}

// recordAt reads the record of an entry of p's bucket: an index entry
// names the record's key after its prefix.
func (p plan) recordAt(tx *bolt.Tx, d *dict, k, v []byte) (budget.Record, bool, error) {
	return p.readRecord(tx, d, k, v, nil)
}

// readRecord is recordAt noting the pages it read in rel.
func (p plan) readRecord(tx *bolt.Tx, d *dict, k, v []byte, rel *releaser) (budget.Record, bool, error) {
	rel.touch(k)
	rel.touch(v)
	if p.prefix != nil {
		rk := k[len(p.prefix):]
		if v = tx.Bucket(bucketRecords).Get(rk); v == nil {
			return budget.Record{}, false, fmt.Errorf("%w: index entry %x names a missing record", ErrDamaged, k)
		}
		rel.touch(v)
		k = rk
	}
	r, err := decodeRecord(d, k, v, false)
	return r, err == nil, err
}

// charged is the charge of an entry of p's bucket, read without decoding
// a record where the entry holds it.
func (p plan) charged(tx *bolt.Tx, d *dict, k, v []byte) (budget.Money, error) {
	if p.prefix != nil {
		n, w := binary.Uvarint(v)
		if w <= 0 {
			return 0, fmt.Errorf("%w: index entry %x does not decode", ErrDamaged, k)
		}
		return budget.Money(n), nil
	}
	if c, ok := recordCharged(v); ok {
		return c, nil
	}
	r, err := decodeRecord(d, k, v, false)
	return r.Charged, err
}

// totals counts and sums the records of f over every record or a
// project's: from the hour totals, and the entries of the hour since begins
// in, so that the cost grows with the number of hours, not of records. A
// token's are tokenTotals'.
func (p plan) totals(tx *bolt.Tx, f RecordFilter) (int, budget.Money, error) {
	if p.none {
		return 0, 0, nil
	}
	d := newDict(tx)
	var n int
	var sum budget.Money
	add := func(c budget.Money) error {
		n++
		var err error
		sum, err = sum.Add(c)
		return err
	}
	c := tx.Bucket(p.bucket).Cursor()
	first := uint32(0)
	rolled := rolledUpUntil(tx)
	if h := hourOf(f.Since.UnixNano()); !f.Since.IsZero() && int64(h)*int64(time.Hour) < rolled.UnixNano() {
		// Since falls in rolled-up history, which counts by the hour.
		first = h
	} else if !f.Since.IsZero() {
		first = h + 1
		// The part of since's hour from since on, entry by entry.
		next := append(bytes.Clone(p.prefix), binary.BigEndian.AppendUint64(nil, uint64(first)*uint64(time.Hour))...)
		for k, v := c.Seek(p.lo); in(k, p.lo, next); k, v = c.Next() {
			ch, err := p.charged(tx, d, k, v)
			if err != nil {
				return 0, 0, err
			}
			if err := add(ch); err != nil {
				return 0, 0, err
			}
		}
		if first == 0 {
			return n, sum, nil // since is past the last hour a record can have
		}
	}
	hc := tx.Bucket(bucketUsageHours).Cursor()
	from := hourKey(p.kind, p.id, first)
	prefix := from[:5]
	for k, v := hc.Seek(from[:]); k != nil && bytes.HasPrefix(k, prefix); k, v = hc.Next() {
		cnt, ch := hourTotal(v)
		var err error
		if sum, err = sum.Add(ch); err != nil {
			return 0, 0, err
		}
		n += int(cnt)
	}
	return n, sum, nil
}

// tokenTotals counts and sums a token's records (with f.Project, only
// the project's): its rollup rows, and its index entries' charges without
// reading a record (a filter by project too reads each). The entries are
// walked in read transactions of streamPage entries with the position
// carried between them, so that a token with a long history never holds a
// read transaction long. last is the last entry counted (nil for none):
// the stream ends there, so the records agree with the totals. A Compact
// batch between two of the transactions that moved entries not read yet
// into the rollup read already (rolled_up_until moved past the position)
// starts the count again, as in Daily.
func (db *DB) tokenTotals(p plan, f RecordFilter) (n int, sum budget.Money, last []byte, err error) {
	for {
		var again bool
		if n, sum, last, again, err = db.tokenTotalsOnce(p, f); err != nil || !again {
			return n, sum, last, err
		}
	}
}

// tokenTotalsOnce is one attempt of tokenTotals; again says a Compact
// batch moved entries it had yet to read.
func (db *DB) tokenTotalsOnce(p plan, f RecordFilter) (n int, sum budget.Money, last []byte, again bool, err error) {
	var mark time.Time
	err = db.view(func(tx *bolt.Tx) error {
		mark = rolledUpUntil(tx)
		return eachRollup(tx, f.TokenID, f.Since, func(r rollupRow) error {
			if p.both && r.project != f.Project {
				return nil
			}
			n += int(r.n)
			var err error
			sum, err = sum.Add(r.charged)
			return err
		})
	})
	for pos := p.lo; err == nil && !again && pos != nil; {
		betweenReads()
		err = db.view(func(tx *bolt.Tx) error {
			if m := rolledUpUntil(tx); !m.Equal(mark) && bytes.Compare(timeKey(m), pos[len(p.prefix):]) > 0 {
				again = true
				return nil
			}
			d := newDict(tx)
			c := tx.Bucket(p.bucket).Cursor()
			k, v := c.Seek(pos)
			count := func(k, v []byte) error {
				ch, err := p.charged(tx, d, k, v)
				if err != nil {
					return err
				}
				if p.both {
					r, _, err := p.recordAt(tx, d, k, v)
					if err != nil || r.Project != f.Project {
						return err
					}
				}
				n++
				sum, err = sum.Add(ch)
				last = bytes.Clone(k)
				return err
			}
			for i := 0; i < streamPage && in(k, p.lo, p.end); i++ {
				if err := count(k, v); err != nil {
					return err
				}
				k, v = c.Next()
			}
			pos = nil
			if in(k, p.lo, p.end) {
				pos = bytes.Clone(k)
			}
			return nil
		})
	}
	return n, sum, last, again, err
}

// Usage returns the records and open reservations that f selects. A
// filter naming a project or token that does not exist, and that no record
// names either (a deleted project's records stay), fails with
// tokens.ErrProjectNotFound or ErrTokenNotFound; a Cursor that is not one
// with ErrBadCursor.
func (db *DB) Usage(f RecordFilter) (Usage, error) {
	var u Usage
	err := db.StreamUsage(f, func(h Usage) error {
		u = h
		u.Records = []budget.Record{}
		return nil
	}, func(r budget.Record) error {
		u.Records = append(u.Records, r)
		return nil
	})
	return u, err
}

// StreamUsage answers f as Usage does, but hands head the totals (Records
// empty) and then each record, oldest first, as it reads them: in read
// transactions of streamPage entries each, with the position carried
// between them, and with nothing held but one page. The stream ends at the
// newest record the totals counted, so the records agree with the totals,
// except for a record committed behind that end while the walk ran (a
// settlement commits up to a few milliseconds after the end time its key
// holds) or one a Compact rolled up meanwhile. head and each run outside
// any transaction: a slow client holds up neither the writer nor bbolt's
// remap.
func (db *DB) StreamUsage(f RecordFilter, head func(Usage) error, each func(budget.Record) error) error {
	var (
		u     Usage
		p     plan
		start []byte
	)
	w := windowWalk{f: f, u: &u}
	// found checks that a filter matching nothing names something that
	// exists, and takes the window's first step.
	found := func(tx *bolt.Tx) error {
		if u.Matched == 0 {
			if f.Project != "" && tx.Bucket(bucketProjects).Get([]byte(f.Project)) == nil {
				return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(f.Project))
			}
			if f.TokenID != "" && tx.Bucket(bucketTokens).Get([]byte(f.TokenID)) == nil {
				return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(f.TokenID))
			}
		}
		if p.none || u.Matched == 0 {
			p.none = true
			return nil
		}
		w.p = &p
		return w.step(tx)
	}
	token := false
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		if p, err = makePlan(tx, f); err != nil {
			return err
		}
		if u.Reserved, err = reserved(tx, f); err != nil {
			return err
		}
		if token = p.kind == scopeToken && !p.none; token {
			return nil // tokenTotals reads in transactions of its own
		}
		if u.Matched, u.Spent, err = p.totals(tx, f); err != nil {
			return err
		}
		return found(tx)
	})
	if err == nil && token {
		var last []byte
		if u.Matched, u.Spent, last, err = db.tokenTotals(p, f); err == nil {
			if end := append(last, 0); last != nil && (p.hi == nil || bytes.Compare(end, p.hi) < 0) {
				p.hi = end // where the totals ended
			}
			err = db.view(found)
		}
	}
	for err == nil && !p.none && !w.done {
		betweenReads()
		err = db.view(w.step)
	}
	if err != nil {
		return err
	}
	start = w.start
	if err := head(u); err != nil || p.none || start == nil {
		return err
	}
	recs := make([]budget.Record, 0, streamPage)
	for pos := start; pos != nil; {
		t0 := time.Now()
		commits, _ := db.CommitStats()
		recs = recs[:0]
		err := db.view(func(tx *bolt.Tx) error {
			d := newDict(tx)
			rel := newReleaser(db, tx)
			defer rel.release()
			c := tx.Bucket(p.bucket).Cursor()
			k, v := c.Seek(pos)
			for i := 0; i < streamPage && in(k, pos, p.hi); i++ {
				r, _, err := p.readRecord(tx, d, k, v, rel)
				if err != nil {
					return err
				}
				if !p.both || r.Project == f.Project {
					recs = append(recs, r)
				}
				k, v = c.Next()
			}
			pos = nil
			if in(k, p.lo, p.hi) {
				pos = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := each(r); err != nil {
				return err
			}
		}
		if now, _ := db.CommitStats(); now != commits && pos != nil {
			// Requests are being settled: yield to them. An export is
			// bulk work and the request path is not; on a small machine
			// a full-speed export takes a share of the cores that
			// requests would have had. Pausing four times as long as the
			// page took keeps an export to a fifth of one core while
			// requests flow (a million records in about 30 s), and at
			// full speed when none do.
			exportPause(4 * time.Since(t0))
		}
	}
	return nil
}

// exportPause is how StreamUsage yields between pages; tests replace it.
var exportPause = time.Sleep

// windowWalk finds the window of a stream: it narrows p.hi to the newest
// entry there is now (so the stream ends where the totals did) and finds
// the first entry to stream: the Limit-th newest match, or the first of
// the range, and sets u.NextCursor when older matches remain. It walks back
// from the newest entry in read transactions of streamPage entries (one
// step each), with the position carried between them, so a large Limit
// never holds a read transaction long.
type windowWalk struct {
	p *plan
	f RecordFilter
	u *Usage
	// pos is the exclusive end of the entries still to walk back over;
	// nil before the first step.
	pos     []byte
	stepped bool
	n       int
	// start is the first entry to stream; nil is nothing to stream.
	start []byte
	done  bool
}

// step takes one step of the walk in tx.
func (w *windowWalk) step(tx *bolt.Tx) error {
	p := w.p
	c := tx.Bucket(p.bucket).Cursor()
	end := w.pos
	if !w.stepped {
		end = p.hi
	}
	var k, v []byte
	if end == nil {
		k, v = c.Last()
	} else if k, v = c.Seek(end); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if !w.stepped {
		w.stepped = true
		if !in(k, p.lo, p.hi) {
			w.done = true
			return nil
		}
		p.hi = append(bytes.Clone(k), 0)
		if w.f.Limit <= 0 {
			k, _ = c.Seek(p.lo)
			w.start, w.done = bytes.Clone(k), true
			return nil
		}
	}
	d := newDict(tx)
	for i := 0; i < streamPage; i++ {
		if !in(k, p.lo, p.hi) {
			w.done = true
			return nil
		}
		ok := !p.both
		if p.both {
			r, _, err := p.recordAt(tx, d, k, v)
			if err != nil {
				return err
			}
			ok = r.Project == w.f.Project
		}
		if ok {
			if w.n == w.f.Limit {
				// One more match than the page holds: a next page
				// exists, and starts before the oldest record of this
				// one.
				w.u.NextCursor = hex.EncodeToString(w.start[len(p.prefix):])
				w.done = true
				return nil
			}
			w.n++
			w.start = bytes.Clone(k)
		}
		k, v = c.Prev()
	}
	// The next step walks back from k, which it has yet to look at.
	w.pos = append(bytes.Clone(k), 0)
	w.done = k == nil
	return nil
}

// reserved sums the open reservations f selects.
func reserved(tx *bolt.Tx, f RecordFilter) (budget.Money, error) {
	var sum budget.Money
	err := tx.Bucket(bucketReservations).ForEach(func(k, v []byte) error {
		res, err := decodeReservation(k, v, false)
		if err != nil {
			return err
		}
		if f.match(res.Request) {
			sum += res.Amount
		}
		return nil
	})
	return sum, err
}
