package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestServer: a started server answers; a committed row survives a fast
// restart and a kill; a stopped server refuses connections.
func TestServer(t *testing.T) {
	s := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exec := func(sql string) {
		t.Helper()
		c, err := pgx.Connect(ctx, s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		c, err := pgx.Connect(ctx, s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exec("CREATE TABLE t (n int)")
	exec("INSERT INTO t VALUES (1)")
	s.Restart()
	exec("INSERT INTO t VALUES (2)")
	s.Kill()
	if c, err := pgx.Connect(ctx, s.DSN()); err == nil {
		c.Close(ctx)
		t.Fatal("a killed server still accepts connections")
	}
	s.Start()
	if n := count(); n != 2 {
		t.Fatalf("after a restart and a kill: %d rows, want 2", n)
	}
}
