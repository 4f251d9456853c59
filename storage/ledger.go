package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// Reserve takes the worst-case cost q of a request from every budget it counts
// against (global, its project, its token) in one serialized step of the
// writer, and returns once that reservation is on disk.
//
// In the same step it checks the token (revoked, expired, killed, model
// allowed), the project's and the global kill switch, and each budget's
// headroom; so a kill or revoke committed before the step refuses the
// request even if the request passed authentication earlier. When the
// worst case does not fit, the quote is clamped or refused per
// Options.OnLow; the returned reservation carries the output cap to use.
func (db *DB) Reserve(ctx context.Context, req budget.Request, q budget.Quote) (budget.Reservation, error) {
	return db.reserveOp(ctx, req, q, false)
}

// reserveOp is Reserve's and ReserveFinal's work through the writer.
func (db *DB) reserveOp(ctx context.Context, req budget.Request, q budget.Quote, final bool) (budget.Reservation, error) {
	op := newOp(opReserve)
	op.req, op.q, op.final = req, q, final
	err := db.run(ctx, op)
	res := op.res
	release(op)
	if err != nil {
		return budget.Reservation{}, err
	}
	return res, nil
}

func (db *DB) reserve(tx *bolt.Tx, req budget.Request, q budget.Quote, final bool) (budget.Reservation, error) {
	now := db.now()
	st := db.st
	tok, proj, err := st.tokenAndProject(req.TokenID)
	if err != nil {
		return budget.Reservation{}, err
	}
	if err := checkUsable(tok, proj, now, st.killAll); err != nil {
		return budget.Reservation{}, err
	}
	if err := secretStillValid(tok, req.SecretHash, now); err != nil {
		// A rotation committed between the request's authentication and
		// its reservation (a body that took its time): the secret it came
		// with is no longer accepted, so neither is the request.
		return budget.Reservation{}, err
	}
	if !tok.Allows(req.Model) {
		return budget.Reservation{}, fmt.Errorf("%w: %s", tokens.ErrModelNotAllowed, budget.Clip(req.Model))
	}
	req.Project = tok.Project

	// The budgets a token's requests count against: global, project,
	// token (check.go relies on the global one coming first).
	ps, ts := st.tokenScopes(tok)
	budgets := [3]budget.Budget{
		{Scope: budget.GlobalScope, Limit: db.global},
		{Scope: ps, Limit: st.limits[ps]},
		{Scope: ts, Limit: st.limits[ts]},
	}
	headroom := budget.MaxMoney
	tightest := 0
	keys := st.keySlice(len(budgets))
	var spends [len(budgets)]budget.Spend
	for i, b := range budgets {
		keys[i] = st.windowKey(b.Scope, b.Limit, now, db.loc)
		spends[i] = st.spend[keys[i]]
		if h := spends[i].Headroom(b.Limit); h < headroom {
			headroom, tightest = h, i
		}
	}
	if db.escrow {
		worst, err := q.Cost(q.MaxOutput)
		if err != nil {
			return budget.Reservation{}, err
		}
		headroom, tightest, err = db.escrowRoom(budgets[:], keys, spends[:], q, worst, final, headroom, tightest)
		if err != nil {
			return budget.Reservation{}, err
		}
	}
	outputCap, amount, err := q.Fit(headroom, db.onLow)
	if errors.Is(err, budget.ErrExhausted) {
		// The refusal's alerts are its only writes: the first of a
		// window for want of budget, for each budget whose committed
		// spend leaves no room (the tightest may be tight only for money
		// other requests hold, and another budget truly spent).
		for i := range budgets {
			if aerr := db.detectExhausted(tx, budgets[i], keys[i], spends[i], q, tok, now); aerr != nil {
				return budget.Reservation{}, aerr
			}
		}
		// Name the budget, so the refusal can say which one to raise.
		return budget.Reservation{}, &budget.ExhaustedError{Scope: budgets[tightest].Scope, Err: err}
	}
	if err != nil {
		return budget.Reservation{}, err
	}
	if db.alerting {
		// The anomalies of the request's use; a freeze refuses it, with
		// the freeze and its alerts committed.
		frozen, err := db.detectUse(tx, tok, req, now)
		if err != nil {
			return budget.Reservation{}, err
		}
		if frozen {
			st.noteUse(tok.ID, now, req.ClientIP, req.UserAgent)
			return budget.Reservation{}, fmt.Errorf("%w for token %s: hardcap froze it after an anomaly; see `hardcap alerts`", tokens.ErrKilled, tok.ID)
		}
	}

	// Every check has passed; from here on only writes.
	rb := tx.Bucket(bucketReservations)
	seq, err := rb.NextSequence()
	if err != nil {
		return budget.Reservation{}, fatal(err)
	}
	for i := range keys {
		spends[i].Reserved += amount
		if err := db.setSpend(keys[i], spends[i]); err != nil {
			return budget.Reservation{}, err
		}
	}
	res := budget.Reservation{
		ID:        reservationID(seq),
		Amount:    amount,
		OutputCap: outputCap,
		Keys:      keys,
		// As the disk holds it (see encodeReservation).
		Created: time.Unix(0, now.UnixNano()).UTC(),
		Request: req,
	}
	if err := db.setReservation(tx, res); err != nil {
		return budget.Reservation{}, err
	}
	st.noteUse(tok.ID, now, req.ClientIP, req.UserAgent)
	return res, nil
}

// reservationID formats a sequence number so that ids sort in the order
// they were taken.
func reservationID(seq uint64) string {
	// "r" and at least 10 base-36 digits, zero-padded; a uint64 has at
	// most 13. One allocation: the string.
	var digits [13]byte
	d := strconv.AppendUint(digits[:0], seq, 36)
	var id [14]byte
	id[0] = 'r'
	n := 1
	for ; n+len(d) < 11; n++ {
		id[n] = '0'
	}
	n += copy(id[n:], d)
	return string(id[:n])
}

// Settle replaces a reservation with the actual charge, exactly once: it
// moves the reserved amount out of every window it was held in, commits the
// charge there, deletes the reservation and writes the usage record, in one
// step. Settling an id that is not open returns ErrNotReserved and changes
// nothing. A charge above the reservation is still committed in full and
// counted as an overshoot (see Status).
func (db *DB) Settle(ctx context.Context, id string, s budget.Settlement) (budget.Record, error) {
	op := newOp(opSettle)
	op.id, op.s = id, s
	err := db.run(ctx, op)
	rec := op.rec
	release(op)
	if err != nil {
		return budget.Record{}, err
	}
	return rec, nil
}

// SettleAsync is Settle without the wait: it queues the settlement for the
// writer's next group commit and returns at once. done is called with the
// record (or the error Settle would have returned) once the commit is on
// disk or has failed, from a goroutine of its own that runs every such
// callback in order (never the writer's: a slow callback delays the other
// callbacks, not the commits). Until the settlement commits, its
// reservation stays held, in memory and on disk, so committed + reserved
// never drops below what the request may cost; a crash before the commit
// leaves the reservation open and the next start charges it in full.
// Flush waits for every settlement queued before it, callbacks included,
// and Close commits every queued settlement. done must not wait on the DB
// itself (Flush, a Settle), since later callbacks wait for it.
func (db *DB) SettleAsync(id string, s budget.Settlement, done func(budget.Record, error)) {
	op := newOp(opSettle)
	op.id, op.s, op.settled, op.lazy = id, s, done, true
	if err := db.enqueue(background, op); err != nil {
		release(op)
		done(budget.Record{}, err)
	}
}

// settleOp settles the open reservation id, read from the writer's state.
func (db *DB) settleOp(tx *bolt.Tx, id string, s *budget.Settlement) (budget.Record, error) {
	res, ok := db.st.res[id]
	if !ok {
		return budget.Record{}, fmt.Errorf("%w: %s", ErrNotReserved, budget.Clip(id))
	}
	if s.Ended.IsZero() {
		s.Ended = db.now()
	}
	return db.settle(tx, res, *s)
}

func (db *DB) settle(tx *bolt.Tx, res budget.Reservation, s budget.Settlement) (budget.Record, error) {
	if s.Charged < 0 {
		return budget.Record{}, errors.New("storage: negative charge")
	}
	now := db.now()
	rates := db.settleRates(tx, res, now)
	for _, k := range res.Keys {
		sp := db.st.spend[k]
		sp.Reserved -= res.Amount
		if sp.Reserved < 0 {
			// Only a corrupted file gets here; keep the books non-negative.
			sp.Reserved = 0
		}
		sp.Committed += s.Charged
		if err := db.setSpend(k, sp); err != nil {
			return budget.Record{}, err
		}
	}
	if err := fatal(db.st.deleteReservation(tx, res.ID)); err != nil {
		return budget.Record{}, err
	}
	db.st.deleteRes(res.ID)
	if s.Charged > res.Amount {
		meta := tx.Bucket(bucketMeta)
		if err := addCounter(meta, metaOvershoots, 1); err != nil {
			return budget.Record{}, err
		}
		if err := addCounter(meta, metaOverAmount, uint64(s.Charged-res.Amount)); err != nil {
			return budget.Record{}, err
		}
	}
	rec := budget.NewRecord(res, s)
	if err := writeRecord(tx, db.st, rec); err != nil {
		return budget.Record{}, err
	}
	if db.alerting {
		if err := db.detectSettle(tx, res, s, rates, now); err != nil {
			return budget.Record{}, fatal(err)
		}
	}
	return rec, nil
}

// recordKey orders records by end time; the reservation id makes it unique.
func recordKey(r budget.Record) []byte {
	return appendRecordKey(make([]byte, 0, 8+len(r.ReservationID)), r)
}

// appendRecordKey appends r's record key to k.
func appendRecordKey(k []byte, r budget.Record) []byte {
	k = binary.BigEndian.AppendUint64(k, uint64(r.Time.UnixNano()))
	return append(k, r.ReservationID...)
}

// recover charges every open reservation in full. It runs inside Open,
// before any request can be served, on the state just loaded.
func (db *DB) recover(tx *bolt.Tx) ([]budget.Record, error) {
	open := make([]budget.Reservation, 0, len(db.st.res))
	for _, res := range db.st.res {
		open = append(open, res)
	}
	slices.SortFunc(open, func(a, b budget.Reservation) int { return strings.Compare(a.ID, b.ID) })
	now := db.now()
	recs := make([]budget.Record, 0, len(open))
	for _, res := range open {
		rec, err := db.settle(tx, res, budget.Settlement{
			Charged: res.Amount,
			Outcome: budget.Recovered,
			Latency: now.Sub(res.Created),
			Ended:   now,
		})
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

func (db *DB) limitOf(tx *bolt.Tx, scope budget.Scope) (budget.Limit, error) {
	if scope == budget.GlobalScope {
		return db.global, nil
	}
	return getLimit(tx, scope)
}

// secretStillValid reports whether presented (a secret's hash; zero: not
// checked) is still accepted for tok at now: its current secret, or its
// previous one within the grace.
func secretStillValid(tok tokens.Token, presented [32]byte, now time.Time) error {
	if presented == ([32]byte{}) {
		return nil
	}
	if h, err := parseHash(tok.Hash); err == nil && h == presented {
		return nil
	}
	if tok.PrevHash != "" {
		if h, err := parseHash(tok.PrevHash); err == nil && h == presented {
			if now.Before(tok.RotatingUntil) {
				return nil
			}
			return &tokens.RotatedError{ID: tok.ID, Rotated: tok.Rotated, GraceEnded: tok.RotatingUntil}
		}
	}
	return &tokens.RotatedError{ID: tok.ID, Rotated: tok.Rotated}
}
