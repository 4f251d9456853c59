package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/jackc/pgx/v5"
)

func TestTenancy_PublishChangesListen(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	a := open(t, dsn, "a")
	b := open(t, dsn, "b")

	lctx, cancel := context.WithCancel(ctx)
	woke := make(chan struct{}, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = b.ListenTenancy(lctx, func() {
			select {
			case woke <- struct{}{}:
			default:
			}
		}, nil)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	wait := func(what string) {
		t.Helper()
		select {
		case <-woke:
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake for %s", what)
		}
	}
	wait("the connection")

	body := func(v string) []byte { b, _ := json.Marshal(map[string]string{"v": v}); return b }
	steps := []struct {
		name string
		c    postgres.Change
		// want is hardcap.limits' limit of the scope afterwards; gone: no row.
		scope budget.Scope
		want  *budget.Money
		gone  bool
	}{
		{"project with a limit", postgres.Change{Kind: postgres.KindProject, ID: "web", Body: body("1"), Limit: budget.Ceiling(5, budget.Day)}, "project:web", ptr(budget.Money(5)), false},
		{"token without a limit", postgres.Change{Kind: postgres.KindToken, ID: "t1", Body: body("2")}, "token:t1", nil, false},
		{"kill all", postgres.Change{Kind: postgres.KindAll, Body: body("3")}, "", nil, false},
		{"project changed", postgres.Change{Kind: postgres.KindProject, ID: "web", Body: body("4"), Limit: budget.Ceiling(7, budget.Day)}, "project:web", ptr(budget.Money(7)), false},
		// A deleted project's limit is a zero ceiling (fail closed).
		{"project deleted", postgres.Change{Kind: postgres.KindProject, ID: "web", Body: body("5"), Deleted: true}, "project:web", ptr(budget.Money(0)), false},
	}
	last := int64(0)
	for _, s := range steps {
		v, err := a.Publish(ctx, s.c)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if v <= last {
			t.Fatalf("%s: version %d after %d", s.name, v, last)
		}
		last = v
		wait(s.name)
		if s.scope != "" {
			w, ok := limitRow(t, dsn, s.scope)
			switch {
			case s.gone && ok:
				t.Fatalf("%s: limits row still there", s.name)
			case !s.gone && !ok:
				t.Fatalf("%s: no limits row", s.name)
			case !s.gone && fmt.Sprint(w) != fmt.Sprint(s.want):
				t.Fatalf("%s: limit %v, want %v", s.name, w, s.want)
			}
		}
	}
	all, more, err := b.Changes(ctx, 0)
	if err != nil || more {
		t.Fatal(err, more)
	}
	// The current record of each: t1, all, web (deleted), in version order.
	if len(all) != 3 || all[0].ID != "t1" || all[1].Kind != postgres.KindAll || all[2].ID != "web" || !all[2].Deleted || all[2].Origin != "a" {
		t.Fatalf("changes %+v", all)
	}
	var got map[string]string
	if err := json.Unmarshal(all[2].Body, &got); err != nil || got["v"] != "5" {
		t.Fatalf("body %s: %v", all[2].Body, err)
	}
	after, _, err := b.Changes(ctx, all[1].Version)
	if err != nil || len(after) != 1 || after[0].ID != "web" {
		t.Fatalf("changes after %d: %+v %v", all[1].Version, after, err)
	}
	if _, err := a.Publish(ctx, postgres.Change{Kind: "provider_key", ID: "x", Body: body("6")}); err == nil {
		t.Fatal("an unknown kind was published")
	}

	// The listener comes back after the server does.
	pg.Restart()
	wait("the reconnection")
	if _, err := a.Publish(ctx, postgres.Change{Kind: postgres.KindToken, ID: "t2", Body: body("7")}); err != nil {
		// The pool's connections died with the server: the first call
		// may fail, the next one reconnects.
		if _, err := a.Publish(ctx, postgres.Change{Kind: postgres.KindToken, ID: "t2", Body: body("7")}); err != nil {
			t.Fatal(err)
		}
	}
	wait("a change after the restart")
}

func ptr[T any](v T) *T { return &v }

// limitRow reads a scope's row of hardcap.limits (nil: no limit).
func limitRow(t *testing.T, dsn string, scope budget.Scope) (*budget.Money, bool) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var limit *int64
	err = conn.QueryRow(ctx, `SELECT limit_nano FROM hardcap.limits WHERE scope = $1`, string(scope)).Scan(&limit)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if limit == nil {
		return nil, true
	}
	m := budget.Money(*limit)
	return &m, true
}

func TestTenancy_PublishMergeReadsTheStoredRecord(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	a := open(t, dsn, "a")
	b := open(t, dsn, "b")
	body := func(v string) []byte { b, _ := json.Marshal(map[string]string{"v": v}); return b }
	if _, err := a.Publish(ctx, postgres.Change{Kind: postgres.KindProject, ID: "web", Body: body("a"), Limit: budget.Ceiling(5, budget.Day)}); err != nil {
		t.Fatal(err)
	}
	var seen map[string]string
	w, err := b.PublishMerge(ctx, postgres.Change{Kind: postgres.KindProject, ID: "web", Body: body("b"), Limit: budget.Ceiling(9, budget.Day)},
		func(stored []byte) (postgres.Change, error) {
			if err := json.Unmarshal(stored, &seen); err != nil {
				return postgres.Change{}, err
			}
			return postgres.Change{Body: body(seen["v"] + "+b"), Limit: budget.Ceiling(3, budget.Day)}, nil
		})
	if err != nil || seen["v"] != "a" {
		t.Fatalf("merge saw %v: %v", seen, err)
	}
	var got map[string]string
	if err := json.Unmarshal(w.Body, &got); err != nil || got["v"] != "a+b" || w.Origin != "b" {
		t.Fatalf("written %s from %q: %v", w.Body, w.Origin, err)
	}
	if l, ok := limitRow(t, dsn, "project:web"); !ok || l == nil || *l != 3 {
		t.Fatalf("hardcap.limits follows the merged limit: %v %v", l, ok)
	}
	if _, err := b.PublishMerge(ctx, postgres.Change{Kind: postgres.KindProject, ID: "web", Body: body("c")},
		func([]byte) (postgres.Change, error) { return postgres.Change{}, errors.New("no") }); err == nil {
		t.Fatal("a failed merge was written")
	}
	all, _, err := a.Changes(ctx, 0)
	if err != nil || len(all) != 1 || all[0].Version != w.Version {
		t.Fatalf("a failed merge changed the store: %+v %v", all, err)
	}
}
