package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

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
	var res budget.Reservation
	err := db.update(ctx, func(tx *bolt.Tx) error {
		var err error
		res, err = db.reserve(tx, req, q)
		return err
	})
	if err != nil {
		return budget.Reservation{}, err
	}
	return res, nil
}

func (db *DB) reserve(tx *bolt.Tx, req budget.Request, q budget.Quote) (budget.Reservation, error) {
	now := db.now()
	tok, proj, err := loadTokenAndProject(tx, req.TokenID)
	if err != nil {
		return budget.Reservation{}, err
	}
	if err := checkUsable(tx, tok, proj, now); err != nil {
		return budget.Reservation{}, err
	}
	if !tok.Allows(req.Model) {
		return budget.Reservation{}, fmt.Errorf("%w: %s", tokens.ErrModelNotAllowed, budget.Clip(req.Model))
	}
	req.Project = tok.Project

	budgets, err := budgetsOf(tx, db.global, tok)
	if err != nil {
		return budget.Reservation{}, err
	}
	headroom := budget.MaxMoney
	tightest := 0
	keys := make([]string, len(budgets))
	spends := make([]budget.Spend, len(budgets))
	for i, b := range budgets {
		keys[i] = b.Key(now, db.loc)
		spends[i] = getSpend(tx, keys[i])
		if h := spends[i].Headroom(b.Limit); h < headroom {
			headroom, tightest = h, i
		}
	}
	outputCap, amount, err := q.Fit(headroom, db.onLow)
	if errors.Is(err, budget.ErrExhausted) {
		// Name the budget, so the refusal can say which one to raise.
		return budget.Reservation{}, &budget.ExhaustedError{Scope: budgets[tightest].Scope, Err: err}
	}
	if err != nil {
		return budget.Reservation{}, err
	}

	// Every check has passed; from here on only writes.
	rb := tx.Bucket(bucketReservations)
	seq, err := rb.NextSequence()
	if err != nil {
		return budget.Reservation{}, fatal(err)
	}
	for i := range keys {
		spends[i].Reserved += amount
		if err := putSpend(tx, keys[i], spends[i]); err != nil {
			return budget.Reservation{}, err
		}
	}
	res := budget.Reservation{
		ID:        reservationID(seq),
		Amount:    amount,
		OutputCap: outputCap,
		Keys:      keys,
		Created:   now,
		Request:   req,
	}
	if err := putReservation(tx, res); err != nil {
		return budget.Reservation{}, err
	}
	return res, nil
}

// reservationID formats a sequence number so that ids sort in the order
// they were taken.
func reservationID(seq uint64) string {
	s := strconv.FormatUint(seq, 36)
	for len(s) < 10 {
		s = "0" + s
	}
	return "r" + s
}

// budgetsOf lists the budgets a token's requests count against: global,
// project, token.
func budgetsOf(tx *bolt.Tx, global budget.Limit, tok tokens.Token) ([]budget.Budget, error) {
	pl, err := getLimit(tx, budget.ProjectScope(tok.Project))
	if err != nil {
		return nil, err
	}
	tl, err := getLimit(tx, budget.TokenScope(tok.ID))
	if err != nil {
		return nil, err
	}
	return []budget.Budget{
		{Scope: budget.GlobalScope, Limit: global},
		{Scope: budget.ProjectScope(tok.Project), Limit: pl},
		{Scope: budget.TokenScope(tok.ID), Limit: tl},
	}, nil
}

// Settle replaces a reservation with the actual charge, exactly once: it
// moves the reserved amount out of every window it was held in, commits the
// charge there, deletes the reservation and writes the usage record, in one
// step. Settling an id that is not open returns ErrNotReserved and changes
// nothing. A charge above the reservation is still committed in full and
// counted as an overshoot (see Status).
func (db *DB) Settle(ctx context.Context, id string, s budget.Settlement) (budget.Record, error) {
	var rec budget.Record
	err := db.update(ctx, func(tx *bolt.Tx) error {
		res, ok, err := getReservation(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s", ErrNotReserved, id)
		}
		if s.Ended.IsZero() {
			s.Ended = db.now()
		}
		rec, err = settle(tx, res, s)
		return err
	})
	return rec, err
}

func settle(tx *bolt.Tx, res budget.Reservation, s budget.Settlement) (budget.Record, error) {
	if s.Charged < 0 {
		return budget.Record{}, errors.New("storage: negative charge")
	}
	for _, k := range res.Keys {
		sp := getSpend(tx, k)
		sp.Reserved -= res.Amount
		if sp.Reserved < 0 {
			// Only a corrupted file gets here; keep the books non-negative.
			sp.Reserved = 0
		}
		sp.Committed += s.Charged
		if err := putSpend(tx, k, sp); err != nil {
			return budget.Record{}, err
		}
	}
	if err := fatal(tx.Bucket(bucketReservations).Delete([]byte(res.ID))); err != nil {
		return budget.Record{}, err
	}
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
	if err := putRecord(tx, rec); err != nil {
		return budget.Record{}, err
	}
	return rec, nil
}

// recordKey orders records by end time; the reservation id makes it unique.
func recordKey(r budget.Record) []byte {
	k := make([]byte, 8, 8+len(r.ReservationID))
	binary.BigEndian.PutUint64(k, uint64(r.Time.UnixNano()))
	return append(k, r.ReservationID...)
}

// recover charges every open reservation in full. It runs inside Open,
// before any request can be served.
func (db *DB) recover(tx *bolt.Tx) ([]budget.Record, error) {
	var open []budget.Reservation
	err := tx.Bucket(bucketReservations).ForEach(func(k, v []byte) error {
		res, err := decodeReservation(k, v, false)
		if err != nil {
			return err
		}
		open = append(open, res)
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := db.now()
	recs := make([]budget.Record, 0, len(open))
	for _, res := range open {
		rec, err := settle(tx, res, budget.Settlement{
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
