package main

import (
	"bufio"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/storage"
)

// TestShutdown_SettlesInFlight stops the server while a stream is stuck
// upstream: after the grace period the stream is cut and settled before the
// database closes, so the next start has nothing to recover.
func TestShutdown_SettlesInFlight(t *testing.T) {
	s := startServer(t, "shutdown_grace: 300ms\n")
	s.mustCLI("project", "create", "web")
	var tok struct{ Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &tok)
	s.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 2})

	req, _ := http.NewRequest("POST", s.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"Hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.stop()
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("stopped after %s, before the grace period", took)
	}
	db, err := storage.Open(filepath.Join(s.dataDir, "hardcap.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := len(db.Recovered()); n != 0 {
		t.Fatalf("%d reservations were left for recovery; shutdown must settle them", n)
	}
	u, err := db.Usage(storage.RecordFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Records) != 1 || u.Records[0].Outcome != budget.UsageMissing || u.Records[0].Charged != u.Records[0].Reserved {
		t.Fatalf("got %+v, want one cut request charged its full reservation", u.Records)
	}
	if !strings.Contains(s.logs.String(), "grace period over") {
		t.Fatal("the log does not say the grace period ran out")
	}
}
