package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAcknowledge(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	actx := WithActor(ctx, "admin:ab12")
	a, created, err := db.Acknowledge(actx, "auto-topup:openai")
	if err != nil || !created || a.Actor != "admin:ab12" || !a.Time.Equal(c.Now()) {
		t.Fatalf("Acknowledge: %+v created=%v, %v", a, created, err)
	}
	c.Set(c.Now().Add(time.Hour))
	again, created, err := db.Acknowledge(WithActor(ctx, "other"), "auto-topup:openai")
	if err != nil || created || again != a {
		t.Fatalf("second Acknowledge: %+v created=%v, %v; want the first one kept", again, created, err)
	}
	if _, _, err := db.Acknowledge(ctx, "auto-topup:anthropic"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxAckKey+1), "a\nb", "\xff"} {
		if _, _, err := db.Acknowledge(ctx, bad); !errors.Is(err, ErrInvalidAck) {
			t.Errorf("Acknowledge(%q): got %v, want ErrInvalidAck", bad, err)
		}
	}
	log, err := db.AuditLog(AuditFilter{Kind: "finding"})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Target != "auto-topup:openai" || log[0].Actor != "admin:ab12" || log[0].Action != "acknowledge" || log[1].Actor != "system" {
		t.Fatalf("audit log %+v, want one entry per new acknowledgement", log)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(path)
	if err != nil || !rep.OK() {
		t.Fatalf("db check with acknowledgements: %v %v", rep.Problems, err)
	}
	db, err = Open(path, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	acks, err := db.Acks()
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 2 || acks[0].Key != "auto-topup:anthropic" || acks[1] != a {
		t.Fatalf("Acks after reopening: %+v", acks)
	}
}
