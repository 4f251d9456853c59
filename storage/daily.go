package storage

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// DayLayout is the layout of DailyUsage.Day: a UTC calendar date.
const DayLayout = time.DateOnly

// DailyFilter selects the usage records Daily sums. Empty fields select
// everything.
type DailyFilter struct {
	// Provider is a hardcap provider name (providers.NAME), not a kind.
	Provider string
	// Since drops records that ended before it.
	Since time.Time
}

// DailyUsage is what hardcap's books hold for one UTC day, provider and
// request model: the day is the UTC date on which each request ended.
type DailyUsage struct {
	// Day is the UTC date, as in "2026-11-30" (DayLayout).
	Day string `json:"day"`
	// Provider is the hardcap provider name.
	Provider string `json:"provider"`
	// Model is the model the request asked for, as the client named it.
	Model string `json:"model"`
	// Requests counts the usage records, charged or not.
	Requests int64 `json:"requests"`
	// Charged is the sum of their charges, in nano-USD.
	Charged budget.Money `json:"charged_usd"`
}

// dailyPage is how many records one read transaction of Daily visits (see
// streamPage); a variable so that tests can page small histories.
var dailyPage = 4096

// betweenReads runs between two read transactions of a walk that reads
// in several (Daily, a token's totals, a stream's window); tests run a
// Compact batch there.
var betweenReads = func() {}

// Daily sums the usage records f selects per UTC day, provider and model,
// sorted by day, provider and model; days rolled up past the retention
// come first. It walks the records in key (end time) order, in read
// transactions of dailyPage records with the position carried between
// them, and holds only the current day's rows, so memory grows with the
// number of models in a day, not with the number of records.
//
// A Compact batch between two of those transactions moves records into
// the rollup Daily read first, and they would be counted nowhere: each
// transaction reads rolled_up_until, and when it moved past a record not
// read yet, Daily starts again (a batch that moved only records read
// already changes nothing: they are counted as records). Compact works
// oldest first and stops at its cutoff, so a start again is rare and
// Daily soon gets ahead of it.
func (db *DB) Daily(f DailyFilter) ([]DailyUsage, error) {
	for {
		out, again, err := db.daily(f)
		if err != nil || !again {
			return out, err
		}
	}
}

// daily is one attempt of Daily; again says a Compact batch moved records
// it had yet to read.
func (db *DB) daily(f DailyFilter) (out []DailyUsage, again bool, err error) {
	out = []DailyUsage{}
	var mark time.Time
	err = db.view(func(tx *bolt.Tx) error {
		var err error
		mark = rolledUpUntil(tx)
		out, err = dailyRollup(tx, f, out)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	type group struct{ provider, model string }
	day := ""
	rows := map[group]*DailyUsage{}
	flush := func() {
		start := len(out)
		for _, r := range rows {
			out = append(out, *r)
		}
		slices.SortFunc(out[start:], func(a, b DailyUsage) int {
			return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Model, b.Model))
		})
		clear(rows)
	}
	add := func(r budget.Record) error {
		if f.Provider != "" && r.Provider != f.Provider {
			return nil
		}
		// Keys are end times in ns, so days come in order: a new day
		// closes the previous one.
		d := r.Time.UTC().Format(DayLayout)
		if d != day {
			flush()
			day = d
		}
		g := group{r.Provider, r.Model}
		row := rows[g]
		if row == nil {
			row = &DailyUsage{Day: d, Provider: r.Provider, Model: r.Model}
			rows[g] = row
		}
		sum, err := row.Charged.Add(r.Charged)
		if err != nil {
			return fmt.Errorf("storage: daily usage of %s %s on %s: %w", r.Provider, r.Model, d, err)
		}
		row.Requests++
		row.Charged = sum
		return nil
	}
	// pos is the first key not read yet.
	pos := timeKey(f.Since)
	if f.Since.IsZero() {
		pos = []byte{}
	}
	for started := false; !started || pos != nil; started = true {
		if started {
			betweenReads()
		}
		err := db.view(func(tx *bolt.Tx) error {
			if m := rolledUpUntil(tx); !m.Equal(mark) && bytes.Compare(timeKey(m), pos) > 0 {
				again = true
				return nil
			}
			c := tx.Bucket(bucketRecords).Cursor()
			k, v := c.Seek(pos)
			dict := newDict(tx)
			rel := newReleaser(db, tx)
			defer rel.release()
			for i := 0; k != nil && i < dailyPage; i++ {
				rel.touch(k)
				rel.touch(v)
				r, err := decodeRecord(dict, k, v, false)
				if err != nil {
					return err
				}
				if err := add(r); err != nil {
					return err
				}
				k, v = c.Next()
			}
			pos = bytes.Clone(k)
			return nil
		})
		if err != nil || again {
			return nil, again, err
		}
	}
	flush()
	return out, false, nil
}

// dailyRollup appends to out the rows of the days rolled up past the
// retention that f selects, sorted by day, provider and model.
func dailyRollup(tx *bolt.Tx, f DailyFilter, out []DailyUsage) ([]DailyUsage, error) {
	type rolled struct {
		day             uint32
		provider, model string
	}
	sums := map[rolled]*DailyUsage{}
	err := eachRollup(tx, "", f.Since, func(r rollupRow) error {
		if f.Provider != "" && r.provider != f.Provider {
			return nil
		}
		g := rolled{r.day, r.provider, r.model}
		row := sums[g]
		if row == nil {
			day := time.Unix(int64(r.day)*86400, 0).UTC().Format(DayLayout)
			row = &DailyUsage{Day: day, Provider: r.provider, Model: r.model}
			sums[g] = row
		}
		sum, err := row.Charged.Add(r.charged)
		row.Charged, row.Requests = sum, row.Requests+int64(r.n)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, g := range slices.SortedFunc(maps.Keys(sums), func(a, b rolled) int {
		return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.provider, b.provider), cmp.Compare(a.model, b.model))
	}) {
		out = append(out, *sums[g])
	}
	return out, nil
}
