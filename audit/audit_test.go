package audit

import (
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/tokens"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

func ago(d time.Duration) time.Time { return now.Add(-d) }

const day24 = 24 * time.Hour

// tok is a live token that has no finding: owned, used yesterday, with a
// budget, rotation not due.
func tok(edit func(*Token)) Token {
	t := Token{Token: tokens.Token{ID: "tok_a", Project: "web", Owner: "ops", Created: ago(100 * day24),
		LastUsed: tokens.Use{Time: ago(day24)}, RotateBy: now.Add(10 * day24)}, Budgeted: true}
	if edit != nil {
		edit(&t)
	}
	return t
}

// keys returns the keys of r's open findings.
func keys(r Report) []string {
	out := []string{}
	for _, f := range r.Findings {
		out = append(out, f.Severity.String()+" "+f.Key())
	}
	return out
}

func TestCheck_Tokens(t *testing.T) {
	tests := []struct {
		name string
		tok  Token
		want []string
	}{
		{"clean", tok(nil), []string{}},
		{"unused 31 days", tok(func(t *Token) { t.LastUsed.Time = ago(31 * day24) }), []string{"high zombie-token:tok_a"}},
		{"unused 29 days", tok(func(t *Token) { t.LastUsed.Time = ago(29 * day24) }), []string{}},
		{"never used, 8 days old", tok(func(t *Token) { t.LastUsed = tokens.Use{}; t.Created = ago(8 * day24) }), []string{"high zombie-token:tok_a"}},
		{"never used, 6 days old", tok(func(t *Token) { t.LastUsed = tokens.Use{}; t.Created = ago(6 * day24) }), []string{}},
		{"past rotate_by", tok(func(t *Token) { t.RotateBy = ago(time.Hour) }), []string{"medium token-rotation-due:tok_a"}},
		{"no rotate_by", tok(func(t *Token) { t.RotateBy = time.Time{} }), []string{}},
		{"unbounded", tok(func(t *Token) { t.Budgeted = false }), []string{"medium token-unbounded:tok_a"}},
		{"no budget but expires", tok(func(t *Token) { t.Budgeted = false; t.Expires = now.Add(day24) }), []string{}},
		{"no budget but models", tok(func(t *Token) { t.Budgeted = false; t.Models = []string{"gpt-4o"} }), []string{}},
		{"no budget but routes", tok(func(t *Token) { t.Budgeted = false; t.Routes = []string{"chat"} }), []string{}},
		{"no budget but ips", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"10.0.0.0/8"} }), []string{}},
		// A scope that allows everything is no scope.
		{"no budget, every IPv4 address", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"0.0.0.0/0"} }), []string{"medium token-unbounded:tok_a"}},
		{"no budget, every IPv6 address", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"::/0"} }), []string{"medium token-unbounded:tok_a"}},
		{"no budget, every address", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"10.0.0.0/8", "::/0", "0.0.0.0/0"} }), []string{"medium token-unbounded:tok_a"}},
		{"no budget, IPv4 in two halves", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"128.0.0.0/1", "0.0.0.0/1"} }), []string{"medium token-unbounded:tok_a"}},
		{"no budget, IPv6 in halves", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"8000::/1", "::/2", "4000::/2"} }), []string{"medium token-unbounded:tok_a"}},
		{"no budget but half of IPv4", tok(func(t *Token) { t.Budgeted = false; t.IPs = []string{"0.0.0.0/1", "::1/128"} }), []string{}},
		{"no budget but IPv4 less a /4", tok(func(t *Token) {
			t.Budgeted = false
			t.IPs = []string{"0.0.0.0/1", "192.0.0.0/2", "128.0.0.0/3", "160.0.0.0/4"}
		}), []string{}},
		{"no budget, every route", tok(func(t *Token) { t.Budgeted = false; t.Routes = slices.Clone(tokens.RouteNames) }), []string{"medium token-unbounded:tok_a"}},
		{"no budget, every route reversed", tok(func(t *Token) { t.Budgeted = false; t.Routes = reversed(tokens.RouteNames) }), []string{"medium token-unbounded:tok_a"}},
		{"no budget but every route less one", tok(func(t *Token) { t.Budgeted = false; t.Routes = tokens.RouteNames[1:] }), []string{}},
		{"every route and every address but a budget", tok(func(t *Token) { t.Routes = tokens.RouteNames; t.IPs = []string{"0.0.0.0/0"} }), []string{}},
		{"no budget but max request", tok(func(t *Token) { t.Budgeted = false; t.MaxRequest = 1 }), []string{}},
		{"no owner", tok(func(t *Token) { t.Owner = " " }), []string{"low token-no-owner:tok_a"}},
		{"old secret in grace", tok(func(t *Token) { t.Rotated = ago(time.Hour); t.RotatingUntil = now.Add(time.Hour) }), []string{"low token-old-secret:tok_a"}},
		{"grace over", tok(func(t *Token) { t.Rotated = ago(2 * day24); t.RotatingUntil = ago(day24) }), []string{}},
		{"revoked zombie", tok(func(t *Token) { t.LastUsed.Time = ago(60 * day24); t.Owner = ""; t.Revoked = ago(time.Hour) }), []string{}},
		{"expired zombie", tok(func(t *Token) { t.LastUsed.Time = ago(60 * day24); t.Expires = ago(time.Second) }), []string{}},
		{"killed zombie still counts", tok(func(t *Token) { t.LastUsed.Time = ago(60 * day24); t.Killed = true }), []string{"high zombie-token:tok_a"}},
		{"everything, most urgent first", tok(func(t *Token) {
			t.LastUsed.Time = ago(40 * day24)
			t.RotateBy = ago(day24)
			t.Budgeted = false
			t.Owner = ""
		}), []string{"high zombie-token:tok_a", "medium token-rotation-due:tok_a", "medium token-unbounded:tok_a", "low token-no-owner:tok_a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(Input{Now: clock, Tokens: []Token{tt.tok}})
			if got := keys(r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for _, f := range r.Findings {
				if f.Message == "" || f.Fix == "" {
					t.Errorf("finding %s has no message or fix: %+v", f.Key(), f)
				}
			}
		})
	}
}

func TestCheck_ProviderKeys(t *testing.T) {
	tests := []struct {
		name string
		key  ProviderKey
		want []string
	}{
		{"fresh", ProviderKey{Provider: "openai", FingerprintPrefix: "ab12", FirstSeen: ago(day24), RotateBy: now.Add(day24)}, []string{}},
		{"past rotation", ProviderKey{Provider: "openai", FingerprintPrefix: "ab12", FirstSeen: ago(100 * day24), RotateBy: ago(10 * day24)}, []string{"high provider-key-rotation-due:openai"}},
		{"no date", ProviderKey{Provider: "openai", FirstSeen: ago(900 * day24)}, []string{}},
		{"rejected", ProviderKey{Provider: "anthropic", FirstSeen: ago(day24), Unauthorized: 3}, []string{"high provider-key-rejected:anthropic"}},
		{"replaced key back", ProviderKey{Provider: "openai", FingerprintPrefix: "ab12", FirstSeen: ago(20 * day24), RotateBy: now.Add(day24), Reused: true, ReusedAt: ago(day24)}, []string{"high provider-key-reused:openai"}},
		{"replaced key back and overdue", ProviderKey{Provider: "openai", FirstSeen: ago(100 * day24), RotateBy: ago(10 * day24), Reused: true}, []string{"high provider-key-reused:openai", "high provider-key-rotation-due:openai"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(Input{Now: clock, ProviderKeys: []ProviderKey{tt.key}})
			if got := keys(r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheck_Files(t *testing.T) {
	const oaKey = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
	const antKey = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"
	tests := []struct {
		name string
		file File
		want []string
	}{
		{"admin token 0600", File{Path: "/d/admin.token", Kind: SecretFile, What: "admin token", Mode: 0o600}, []string{}},
		{"admin token 0640", File{Path: "/d/admin.token", Kind: SecretFile, What: "admin token", Mode: 0o640}, []string{"high key-file-mode:/d/admin.token"}},
		{"key file 0604", File{Path: "/k/openai", Kind: SecretFile, What: "providers.openai.api_key", Mode: 0o604}, []string{"critical key-file-mode:/k/openai"}},
		{"key file group-writable", File{Path: "/k/openai", Kind: SecretFile, Mode: 0o620}, []string{"high key-file-mode:/k/openai"}},
		{"key file 0400", File{Path: "/k/openai", Kind: SecretFile, Mode: fs.FileMode(0o400)}, []string{}},
		{"config with sources", File{Path: "/c.yaml", Kind: ConfigFile, Mode: 0o644, Content: []byte("providers:\n  openai:\n    api_key: env:OPENAI_API_KEY\n    admin_key: 'file:/k/admin'\n  x:\n    api_key: \"cmd:pass show x\"\n")}, []string{}},
		{"config with an OpenAI key", File{Path: "/c.yaml", Kind: ConfigFile, Content: []byte("providers:\n  openai:\n    api_key: " + oaKey + "\n")}, []string{"critical literal-key:/c.yaml"}},
		{"config with an Anthropic key in a comment", File{Path: "/c.yaml", Kind: ConfigFile, Content: []byte("# old: " + antKey + "\n")}, []string{"critical literal-key:/c.yaml"}},
		{"config with another provider's literal", File{Path: "/c.yaml", Kind: ConfigFile, Content: []byte("providers:\n  groq:\n    api_key: gsk_abcdefghijklmnop # oops\n")}, []string{"critical literal-key:/c.yaml"}},
		{"webhook secret literal", File{Path: "/c.yaml", Kind: ConfigFile, Content: []byte("alerts:\n  webhooks:\n    - url: https://x\n      secret: whsec_abc\n")}, []string{"critical literal-key:/c.yaml"}},
		{"empty and null values", File{Path: "/c.yaml", Kind: ConfigFile, Content: []byte("api_key:\napi_key: \"\"\napi_key: ~ # none\n")}, []string{}},
		{"env file with a key", File{Path: "/d/.env", Kind: ConfigFile, What: "env file", Content: []byte("FOO=1\nexport GROQ_API_KEY=gsk_abcdef\n")}, []string{"critical literal-key:/d/.env"}},
		{"env file with a reference", File{Path: "/d/.env", Kind: ConfigFile, Content: []byte("OPENAI_API_KEY=$FROM_VAULT\nHARDCAP_API_KEY=\n")}, []string{}},
		{"a word ending in sk-", File{Path: "/c.yaml", Kind: ConfigFile, Content: []byte("name: task-abcdefghijklmnopqrstuvwxyz\n")}, []string{}},
		{"a secret file is not searched", File{Path: "/k/openai", Kind: SecretFile, Mode: 0o600, Content: []byte(oaKey)}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(Input{Now: clock, Files: []File{tt.file}})
			if got := keys(r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			raw, _ := json.Marshal(r)
			for _, secret := range []string{oaKey, antKey, "gsk_abc", "whsec_abc", "abcdefghijklmnop"} {
				if strings.Contains(string(raw), secret) {
					t.Fatalf("the report holds the key %q: %s", secret, raw)
				}
			}
		})
	}
}

func TestLiteralKey_Line(t *testing.T) {
	line, what := LiteralKey([]byte("a: 1\nb: 2\n  api_key: sk-ant-admin01-abcdefghijklmnopqrstuvwxyz\n"))
	if line != 3 || !strings.Contains(what, "Anthropic") {
		t.Fatalf("got line %d %q, want 3 and an Anthropic key", line, what)
	}
}

func TestCheck_PricesAndProviders(t *testing.T) {
	r := Check(Input{Now: clock,
		Prices: []PriceSource{{Name: "old", AsOf: ago(91 * day24)}, {Name: "new", AsOf: ago(89 * day24)}, {Name: "undated"}},
		Providers: []Provider{
			{Name: "openai", Kind: "openai", BaseURL: "https://api.openai.com/v1"},
			{Name: "anthropic", Kind: "anthropic", BaseURL: "https://api.anthropic.com"},
			{Name: "groq", Kind: "openai", BaseURL: "https://api.groq.com/openai/v1"},
		}})
	want := []string{"medium prices-stale:old", "low auto-topup:anthropic", "low auto-topup:groq", "low auto-topup:openai"}
	if got := keys(r); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, tt := range []struct{ target, where string }{
		{"openai", "platform.openai.com/settings/organization/billing"},
		{"anthropic", "console.anthropic.com/settings/billing"},
		{"groq", "groq's console"},
	} {
		for _, f := range r.Findings {
			if f.Target == tt.target && f.Kind == KindAutoTopUp && (!strings.Contains(f.Message, tt.where) || f.Fix != "hardcap audit --ack auto-topup:"+tt.target) {
				t.Errorf("auto-topup for %s: got %q / %q, want it to name %q", tt.target, f.Message, f.Fix, tt.where)
			}
		}
	}
	if r.Counts["medium"] != 1 || r.Counts["low"] != 3 || r.Counts["high"] != 0 || r.AtOrAbove(Medium) != 1 || r.AtOrAbove(Low) != 4 || r.AtOrAbove(High) != 0 {
		t.Fatalf("counts %v", r.Counts)
	}
}

func TestCheck_Acks(t *testing.T) {
	in := Input{Now: clock,
		Providers: []Provider{{Name: "openai", Kind: "openai"}, {Name: "anthropic", Kind: "anthropic"}},
		Tokens:    []Token{tok(func(t *Token) { t.LastUsed.Time = ago(60 * day24) })},
		Acks: []Ack{
			{Key: "auto-topup:openai", Time: ago(time.Hour), Actor: "admin"},
			// A stored ack of a kind that must be fixed hides nothing.
			{Key: "zombie-token:tok_a", Time: ago(time.Hour), Actor: "admin"},
		}}
	r := Check(in)
	if got, want := strings.Join(keys(r), ","), "high zombie-token:tok_a,low auto-topup:anthropic"; got != want {
		t.Fatalf("open findings %q, want %q", got, want)
	}
	if len(r.Acknowledged) != 1 || r.Acknowledged[0].Key() != "auto-topup:openai" || r.Acknowledged[0].AckedBy != "admin" || !r.Acknowledged[0].AckedAt.Equal(ago(time.Hour)) {
		t.Fatalf("acknowledged %+v", r.Acknowledged)
	}
	tests := []struct {
		key  string
		want error
	}{
		{"auto-topup:anthropic", nil},
		{"auto-topup:openai", nil}, // again: already acknowledged
		{"auto-topup:opnai", ErrNoFinding},
		{"zombie-token:tok_a", ErrNotAckable},
		{"token-no-owner:tok_zzz", ErrNoFinding},
		{"nonsense", ErrInvalidAck},
		{"no-such-kind:x", ErrInvalidAck},
		{"auto-topup:", ErrInvalidAck},
		{"auto-topup:a\x00b", ErrInvalidAck},
		{"auto-topup:" + strings.Repeat("x", MaxTarget+1), ErrInvalidAck},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			_, err := r.Ackable(tt.key)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err != nil && len(err.Error()) > 400 {
				t.Fatalf("the error echoes the input unbounded: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestSeverity_Text(t *testing.T) {
	for _, s := range []Severity{Low, Medium, High, Critical} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Fatalf("%s: round trip gave %v, %v", b, back, err)
		}
	}
	if _, err := ParseSeverity("urgent"); !errors.Is(err, ErrSeverity) {
		t.Fatalf("ParseSeverity(urgent): got %v", err)
	}
	if _, err := json.Marshal(Severity(0)); err == nil {
		t.Fatal("the zero severity marshalled")
	}
}
