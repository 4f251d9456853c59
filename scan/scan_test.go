package scan

import (
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/tokens"
)

// alnum is what the fake keys are drawn from.
const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// fakeRand returns n characters of alnum drawn from a generator seeded
// with seed, so each test's keys are fixed and high in entropy (the rules
// refuse low-entropy look-alikes).
func fakeRand(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

// Fake keys in the shapes the gitleaks rules know. They are built at run
// time so that this file holds no string a scanner would take for a key.
func fakeOpenAI(seed uint64) string {
	return "sk-" + "proj-" + fakeRand(seed, 74) + "T3Blbk" + "FJ" + fakeRand(seed+1, 74)
}

func fakeAnthropic(seed uint64) string {
	return "sk-" + "ant-api03-" + fakeRand(seed, 93) + "AA"
}

func fakeGitHub(seed uint64) string { return "gh" + "p_" + fakeRand(seed, 36) }

func newToken(t *testing.T) string {
	t.Helper()
	s, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newScanner(t testing.TB) *Scanner {
	t.Helper()
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noSecret fails when any field of a finding holds one of the secrets.
func noSecret(t *testing.T, fs []Finding, secrets ...string) {
	t.Helper()
	for _, f := range fs {
		for _, s := range secrets {
			for _, v := range []string{f.File, f.Rule, f.Secret, f.Provider, f.Revoke, f.Commit} {
				if strings.Contains(v, s) {
					t.Errorf("finding %+v holds the whole secret", f)
				}
			}
		}
	}
}

func TestContent_Finds(t *testing.T) {
	s := newScanner(t)
	oa, an, gh, hc := fakeOpenAI(1), fakeAnthropic(2), fakeGitHub(3), newToken(t)
	typo := hc[:len(hc)-1] + string(rune(hc[len(hc)-1])^1)
	if tokens.Parse(typo) == nil {
		typo = hc[:len(hc)-1] + "!"
	}
	tests := []struct {
		name    string
		content string
		want    []Finding // File, Commit and hash aside
	}{
		{"openai in env file", "# keys\nOPENAI_API_KEY=" + oa + "\n",
			[]Finding{{Line: 2, Rule: "openai-api-key", Kind: ProviderKey, Provider: "OpenAI", Revoke: "https://platform.openai.com/api-keys", Secret: oa[:6] + "..." + oa[len(oa)-4:]}}},
		{"anthropic in code", "package x\n\nconst key = \"" + an + "\"\n",
			[]Finding{{Line: 3, Rule: "anthropic-api-key", Kind: ProviderKey, Provider: "Anthropic", Revoke: "https://console.anthropic.com/settings/keys", Secret: an[:6] + "..." + an[len(an)-4:]}}},
		{"github token", "\n\n\n\ntoken: " + gh + "\n",
			[]Finding{{Line: 5, Rule: "github-pat", Kind: ProviderKey, Provider: "GitHub", Revoke: "https://github.com/settings/tokens", Secret: gh[:6] + "..." + gh[len(gh)-4:]}}},
		{"hardcap token", "x\napi_key: \"" + hc + "\"\n",
			[]Finding{{Line: 2, Rule: TokenRule, Kind: HardcapToken, Secret: hc[:6] + "..." + hc[len(hc)-4:]}}},
		{"hardcap token glued to text", "Bearer" + hc + "xyz",
			[]Finding{{Line: 1, Rule: TokenRule, Kind: HardcapToken, Secret: hc[:6] + "..." + hc[len(hc)-4:]}}},
		{"openai key in base64", "data:\n  blob: " + base64.StdEncoding.EncodeToString([]byte("key="+oa+"\n")) + "\n",
			[]Finding{{Line: 2, Rule: "openai-api-key", Kind: ProviderKey, Provider: "OpenAI", Revoke: "https://platform.openai.com/api-keys", Secret: oa[:6] + "..." + oa[len(oa)-4:]}}},
		{"a key marked gitleaks:allow", "k=" + oa + " # gitleaks:allow\n", nil},
		{"a hardcap token is found even so", "k=" + hc + " # gitleaks:allow\n",
			[]Finding{{Line: 1, Rule: TokenRule, Kind: HardcapToken, Secret: hc[:6] + "..." + hc[len(hc)-4:]}}},
		{"hardcap token with a typo", "x " + typo + "\n", nil},
		{"nothing", "hello\nworld\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Content("f.txt", "", 1, tt.content)
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, got, oa, an, gh, hc)
			var trimmed []Finding
			for _, f := range got {
				if f.File != "f.txt" {
					t.Errorf("File = %q, want f.txt", f.File)
				}
				if h, ok := f.TokenHash(); ok != (f.Kind == HardcapToken) || (ok && h != tokens.HashOf(hc)) {
					t.Errorf("TokenHash of %+v = %v, %v", f, h, ok)
				}
				f.File, f.hash = "", tokens.Hash{}
				trimmed = append(trimmed, f)
			}
			if !slices.Equal(trimmed, tt.want) {
				t.Errorf("got %+v\nwant %+v", trimmed, tt.want)
			}
		})
	}
}

func TestContent_StartLine(t *testing.T) {
	s := newScanner(t)
	hc, oa := newToken(t), fakeOpenAI(7)
	got, err := s.Content("a/b.go", "abc123", 40, "one\n"+hc+"\nthree\nk="+oa+"\n")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for _, f := range got {
		lines[f.Rule] = f.Line
		if f.Commit != "abc123" {
			t.Errorf("Commit = %q", f.Commit)
		}
	}
	if lines[TokenRule] != 41 || lines["openai-api-key"] != 43 {
		t.Errorf("lines %v, want the token on 41 and the key on 43", lines)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ secret, want string }{
		{"hc_0123456789abcdefghijklmnopqrstuvWXYZ12", "hc_012...YZ12"},
		{"abcdefghijklmnop", "abcd...mnop"},
		{"abcdefgh", "ab...gh"},
		{"abcdefg", "a...g"},
		{"abc", "..."},
		{"", "..."},
		{".", "***"},
		{"..", "***"},
		{"*", "..."},
		{"ab\x1b[31mcdefghijklmnopqrs\x07", "ab?[31...qrs?"},
		{"ключ-секретный-длинный", "ключ-...нный"},
		{"\xff\xfe\xfd\xfcabcdefghijkl\xff", "????...jkl?"},
	}
	for _, tt := range tests {
		got := Redact(tt.secret)
		if got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.secret, got, tt.want)
		}
		if tt.secret != "" && strings.Contains(got, tt.secret) {
			t.Errorf("Redact(%q) = %q holds the secret", tt.secret, got)
		}
	}
}

func TestProviderOf(t *testing.T) {
	tests := []struct{ rule, name, revoke string }{
		{"openai-api-key", "OpenAI", "https://platform.openai.com/api-keys"},
		{"anthropic-api-key", "Anthropic", "https://console.anthropic.com/settings/keys"},
		{"anthropic-admin-api-key", "Anthropic", "https://console.anthropic.com/settings/admin-keys"},
		{"stripe-access-token", "Stripe", "https://dashboard.stripe.com/apikeys"},
		{"twilio-api-key", "twilio", "revoke it in twilio's console or API settings and issue a new one"},
		{"generic-api-key", "", "revoke it where it was issued and replace it; the rule matched its shape, not its issuer"},
	}
	for _, tt := range tests {
		if p := ProviderOf(tt.rule); p.Name != tt.name || p.Revoke != tt.revoke {
			t.Errorf("ProviderOf(%q) = %+v, want %q, %q", tt.rule, p, tt.name, tt.revoke)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deepDir makes, under dir, a chain of directories whose full path is
// longer than the system allows (PATH_MAX, 4096 bytes on Linux), with a
// file at its end, and returns the chain's first directory. Opening the
// far end by its path fails even for root, whom permissions do not stop:
// it is a directory a walk cannot read.
func deepDir(t *testing.T, dir string) string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	name := strings.Repeat("d", 200)
	rel := "deep"
	for range 25 {
		rel = filepath.Join(rel, name)
	}
	if err := root.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile(filepath.Join(rel, "leak.env"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "deep")
}

func TestFiles_Walk(t *testing.T) {
	dir := t.TempDir()
	hc, oa, an := newToken(t), fakeOpenAI(11), fakeAnthropic(12)
	write(t, filepath.Join(dir, "app", "config.yaml"), "openai:\n  api_key: "+oa+"\n")
	write(t, filepath.Join(dir, "app", "deep", "er", "main.py"), "import os\n\nTOKEN = '"+hc+"'\n")
	write(t, filepath.Join(dir, ".git", "config"), "key = "+an+"\n")
	write(t, filepath.Join(dir, "bin", "blob"), "\x00\x01\x02"+an)
	write(t, filepath.Join(dir, "big.txt"), strings.Repeat("a", 2048)+an)
	write(t, filepath.Join(dir, "clean.md"), "# nothing here\n")
	if err := os.Symlink(filepath.Join(dir, "app"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	deepDir(t, dir)

	s, err := New(Options{MaxFileSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Files(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, res.Findings, hc, oa, an)
	got := map[string]string{}
	for _, f := range res.Findings {
		rel, _ := filepath.Rel(dir, f.File)
		got[rel] = f.Rule
	}
	want := map[string]string{
		filepath.Join("app", "config.yaml"):           "openai-api-key",
		filepath.Join("app", "deep", "er", "main.py"): TokenRule,
	}
	if len(got) != len(want) || got[filepath.Join("app", "config.yaml")] != want[filepath.Join("app", "config.yaml")] || got[filepath.Join("app", "deep", "er", "main.py")] != TokenRule {
		t.Errorf("findings %v, want %v (not .git, not the binary, not the big file, not through the link)", got, want)
	}
	if res.Binary != 1 {
		t.Errorf("Binary = %d, want 1", res.Binary)
	}
	var large, unreadable int
	for _, p := range res.Problems {
		switch {
		case errors.Is(p.Err, ErrTooLarge) && strings.HasSuffix(p.Path, "big.txt"):
			large++
		case errors.Is(p.Err, ErrUnreadable):
			unreadable++
		default:
			t.Errorf("unexpected problem %+v", p)
		}
		if p.Message == "" || strings.Contains(p.Message, an) {
			t.Errorf("problem message %q", p.Message)
		}
	}
	if large != 1 || unreadable != 1 {
		t.Errorf("problems %+v, want the big file too large and the deep directory unreadable", res.Problems)
	}
	if res.Files != 3 {
		t.Errorf("Files = %d, want 3 (config.yaml, main.py, clean.md)", res.Files)
	}
}

func TestFiles_Paths(t *testing.T) {
	dir := t.TempDir()
	hc := newToken(t)
	write(t, filepath.Join(dir, "one.txt"), hc)
	write(t, filepath.Join(dir, "sub", "two.txt"), "x "+hc)
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	s := newScanner(t)
	tests := []struct {
		name  string
		paths []string
		files int
	}{
		{"a file", []string{filepath.Join(dir, "one.txt")}, 1},
		{"two paths", []string{filepath.Join(dir, "one.txt"), filepath.Join(dir, "sub")}, 2},
		{"a link named as a path is followed", []string{filepath.Join(dir, "linkdir")}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Files(context.Background(), tt.paths)
			if err != nil {
				t.Fatal(err)
			}
			if res.Files != tt.files || len(res.Findings) != tt.files {
				t.Errorf("files %d, findings %+v; want %d of each", res.Files, res.Findings, tt.files)
			}
		})
	}
	_, err := s.Files(context.Background(), []string{filepath.Join(dir, "one.txt"), filepath.Join(dir, "nope")})
	if !errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing path: %v, want ErrNoPath naming it", err)
	}
}
