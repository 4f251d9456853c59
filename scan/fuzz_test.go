package scan

import (
	"strings"
	"testing"

	"github.com/hardcap/hardcap/tokens"
)

// FuzzScan feeds the scanner what an untrusted file may hold. It must not
// panic, and no field of a finding may hold the whole secret found: the
// redacted form is all that leaves the package.
func FuzzScan(f *testing.F) {
	hc, err := tokens.NewSecret()
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"",
		"OPENAI_API_KEY=" + fakeOpenAI(1) + "\n",
		"key: \"" + fakeAnthropic(2) + "\"\n",
		"token=" + hc + "\n" + hc,
		"api_key = \"abcdefghij0123456789ABCD\"\n",
		"password: c2stcHJvai1hYmNkZWZnaGlqa2xtbm9w\n", // gitleaks:allow (a seed, not a key)
		"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
		"\x00\xff\xfe" + hc[:20],
		"secret=\x1b[31m" + strings.Repeat("x", 40) + "\n",
	} {
		f.Add(seed)
	}
	s := newScanner(f)
	f.Fuzz(func(t *testing.T, content string) {
		found, secrets, err := s.content("fuzz.txt", "", 1, content)
		if err != nil {
			// The detector failed on this input and said so: the
			// content counts as unscanned, not clean.
			return
		}
		if len(found) != len(secrets) {
			t.Fatalf("%d findings, %d secrets", len(found), len(secrets))
		}
		lines := strings.Count(content, "\n") + 1
		for i, fd := range found {
			sec := secrets[i]
			if sec != "" {
				for _, v := range []string{fd.Secret, fd.File, fd.Rule, fd.Provider, fd.Revoke, fd.Commit} {
					if strings.Contains(v, sec) {
						t.Fatalf("finding %d shows the whole secret in %q", i, v)
					}
				}
			}
			if fd.Line < 1 || fd.Line > lines {
				t.Fatalf("finding on line %d of %d", fd.Line, lines)
			}
		}
	})
}
