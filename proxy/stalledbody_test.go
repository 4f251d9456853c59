package proxy_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// stalledBody gives its first bytes, then waits for release before the
// rest: a client whose body is still arriving.
type stalledBody struct {
	first, rest string
	started     chan struct{} // closed at the first read
	release     chan struct{}
	sent        bool
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		close(b.started)
		return copy(p, b.first), nil
	}
	if b.release != nil {
		<-b.release
		b.release = nil
		return copy(p, b.rest), nil
	}
	return 0, io.EOF
}

// firstAuth closes authed when its first Authenticate returns: the
// request is then past authentication.
type firstAuth struct {
	tokens.Authenticator
	once   sync.Once
	authed chan struct{}
}

func (a *firstAuth) Authenticate(secret string) (tokens.Token, error) {
	t, err := a.Authenticator.Authenticate(secret)
	a.once.Do(func() { close(a.authed) })
	return t, err
}

// TestStalledBody_ChangesMeanwhileApply: a revoke, kill or rotation, or a
// narrowed route scope, committed while a request's body is still arriving
// refuses that request, metered or free, and nothing reaches the provider.
func TestStalledBody_ChangesMeanwhileApply(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *harness) error
	}{
		{"revoke", func(h *harness) error { _, err := h.db.RevokeToken(context.Background(), h.tokenID); return err }},
		{"kill", func(h *harness) error {
			return h.db.SetKill(context.Background(), storage.KillTarget{Token: h.tokenID}, true)
		}},
		{"rotate", func(h *harness) error { _, _, err := h.db.RotateToken(context.Background(), h.tokenID, 0); return err }},
		{"narrow routes", func(h *harness) error {
			routes := []string{"embeddings"}
			_, err := h.db.UpdateToken(context.Background(), h.tokenID, storage.TokenChange{Routes: &routes})
			return err
		}},
	}
	for _, tt := range tests {
		for _, route := range []struct{ path, body string }{
			{"/v1/chat/completions", helloBody},
			{"/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hi"}]}`},
		} {
			t.Run(tt.name+" "+route.path, func(t *testing.T) {
				auth := &firstAuth{authed: make(chan struct{})}
				h := newHarness(t, harnessOptions{noSync: true, auth: func(a tokens.Authenticator) tokens.Authenticator {
					auth.Authenticator = a
					return auth
				}})
				before := len(h.up.Calls()) + len(h.ant.Calls())
				body := &stalledBody{first: route.body[:5], rest: route.body[5:], started: make(chan struct{}), release: make(chan struct{})}
				req, err := http.NewRequest(http.MethodPost, h.srv.URL+route.path, body)
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = int64(len(route.body))
				req.Header.Set("Authorization", "Bearer "+h.token)
				req.Header.Set("Content-Type", "application/json")
				if strings.Contains(route.path, "messages") {
					req.Header.Set("Anthropic-Version", "2023-06-01")
				}
				done := make(chan *http.Response, 1)
				go func() {
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
					}
					done <- resp
				}()
				// The request is past authentication, its body not all
				// there; then the change commits, then the rest comes.
				<-body.started
				<-auth.authed
				if err := tt.change(h); err != nil {
					t.Fatal(err)
				}
				close(body.release)
				resp := <-done
				if resp == nil {
					return
				}
				out := readAll(t, resp)
				if resp.StatusCode < 400 {
					t.Fatalf("got %d %s; want a refusal", resp.StatusCode, out)
				}
				if after := len(h.up.Calls()) + len(h.ant.Calls()); after != before {
					t.Fatalf("%d call(s) reached the provider", after-before)
				}
			})
		}
	}
}

// failSecond fails every second Authenticate (the one after the body)
// with no token, as a closed or damaged database answers, while fail is
// set.
type failSecond struct {
	tokens.Authenticator
	mu    sync.Mutex
	calls int
	fail  bool
}

func (a *failSecond) Authenticate(secret string) (tokens.Token, error) {
	a.mu.Lock()
	a.calls++
	fail := a.fail && a.calls%2 == 0
	a.mu.Unlock()
	if fail {
		return tokens.Token{}, errors.New("the token store is closed")
	}
	t, err := a.Authenticator.Authenticate(secret)
	t.MaxConcurrent = 1
	return t, err
}

// TestSecondAuthenticationFailure_FreesTheSlot: a request refused because
// the token store failed after its body arrived gives its max_concurrent
// slot back, so the token's next request is served.
func TestSecondAuthenticationFailure_FreesTheSlot(t *testing.T) {
	auth := &failSecond{fail: true}
	h := newHarness(t, harnessOptions{noSync: true, auth: func(a tokens.Authenticator) tokens.Authenticator {
		auth.Authenticator = a
		return auth
	}})
	resp, body := h.send("POST", "/v1/chat/completions", helloBody)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the store failing: %d %s; want 503", resp.StatusCode, body)
	}
	auth.mu.Lock()
	auth.fail = false
	auth.mu.Unlock()
	if resp, body := h.send("POST", "/v1/chat/completions", helloBody); resp.StatusCode != http.StatusOK {
		t.Fatalf("the next request: %d %s; want 200 (the slot was kept)", resp.StatusCode, body)
	}
}
