package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

// BenchmarkThroughput compares requests per second straight to the fake
// upstream with the same requests through hardcap (token lookup, bound,
// durable reservation with fsync through group commit, forwarding,
// metering, durable settlement), side by side in one run:
//
//	go test -run '^$' -bench Throughput -benchtime 5s ./proxy/
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range []struct {
		name   string
		stream bool
	}{{"json", false}, {"stream", true}} {
		body := `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}`
		if tc.stream {
			body = `{"model":"gpt-4o-mini","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}`
		}
		h := newBenchHarness(b)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
		run := func(b *testing.B, url, auth string) {
			b.SetParallelism(128)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", url, strings.NewReader(body))
					req.Header.Set("Authorization", auth)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		}
		b.Run(tc.name+"/direct", func(b *testing.B) { run(b, h.up.URL()+"/chat/completions", "Bearer "+realKey) })
		b.Run(tc.name+"/hardcap", func(b *testing.B) { run(b, h.srv.URL+"/v1/chat/completions", "Bearer "+h.token) })
		commits, ops := h.db.CommitStats()
		b.Logf("%s: %d ledger operations in %d fsynced commits", tc.name, ops, commits)
	}
}

// newBenchHarness is a harness with a real, fsyncing database and no limit.
func newBenchHarness(b *testing.B) *harness {
	b.Helper()
	return newHarness(b, harnessOptions{global: budget.Limit{}})
}
