package scan

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/hardcap/hardcap/tokens"
)

// TestHistory_Missed: the changes git log leaves out by default, or that
// a filter dropped, are scanned: a link replaced by a file (a type
// change), a file .gitattributes marks -diff, a line a merge commit adds,
// the root commit with log.showRoot=false, and commit messages.
func TestHistory_Missed(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, dir string, git func(...string) string, secret string) (file string)
	}{
		{"type change", func(t *testing.T, dir string, git func(...string) string, secret string) string {
			write(t, filepath.Join(dir, "x"), "x\n")
			if err := os.Symlink("x", filepath.Join(dir, "cfg.env")); err != nil {
				t.Fatal(err)
			}
			git("add", "-A")
			git("commit", "-qm", "a link")
			os.Remove(filepath.Join(dir, "cfg.env"))
			write(t, filepath.Join(dir, "cfg.env"), "KEY="+secret+"\n")
			git("add", "-A")
			git("commit", "-qm", "the link is a file now")
			return "cfg.env"
		}},
		{"-diff attribute", func(t *testing.T, dir string, git func(...string) string, secret string) string {
			write(t, filepath.Join(dir, ".gitattributes"), "*.env -diff\n")
			git("add", "-A")
			git("commit", "-qm", "attributes")
			write(t, filepath.Join(dir, "prod.env"), "KEY="+secret+"\n")
			git("add", "-A")
			git("commit", "-qm", "env")
			return "prod.env"
		}},
		{"merge commit", func(t *testing.T, dir string, git func(...string) string, secret string) string {
			write(t, filepath.Join(dir, "a.txt"), "a\n")
			git("add", "-A")
			git("commit", "-qm", "base")
			git("checkout", "-qb", "side")
			write(t, filepath.Join(dir, "b.txt"), "b\n")
			git("add", "-A")
			git("commit", "-qm", "side")
			git("checkout", "-q", "main")
			write(t, filepath.Join(dir, "c.txt"), "c\n")
			git("add", "-A")
			git("commit", "-qm", "main")
			git("merge", "-q", "--no-commit", "--no-ff", "side")
			write(t, filepath.Join(dir, "a.txt"), "a\nKEY="+secret+"\n")
			git("add", "-A")
			git("commit", "-qm", "merge")
			return "a.txt"
		}},
		{"root commit, log.showRoot=false", func(t *testing.T, dir string, git func(...string) string, secret string) string {
			git("config", "log.showRoot", "false")
			write(t, filepath.Join(dir, "first.txt"), "KEY="+secret+"\n")
			git("add", "-A")
			git("commit", "-qm", "root")
			return "first.txt"
		}},
		{"commit message", func(t *testing.T, dir string, git func(...string) string, secret string) string {
			write(t, filepath.Join(dir, "a.txt"), "a\n")
			git("add", "-A")
			git("commit", "-qm", "deploy\n\nused "+secret+" to test")
			return MessageFile
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, git := gitRepo(t)
			hc := newToken(t)
			file := tt.build(t, dir, git, hc)
			head := git("rev-parse", "HEAD")
			res, err := newScanner(t).History(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, res.Findings, hc)
			var hit bool
			for _, f := range res.Findings {
				hit = hit || (f.Kind == HardcapToken && f.File == file && f.Commit == head)
			}
			if !hit || len(res.Problems) != 0 {
				t.Errorf("findings %+v, problems %+v; want the token in %s at %s", res.Findings, res.Problems, file, head)
			}
		})
	}
}

// TestStaged_Missed: the hook sees a type change and a -diff file.
func TestStaged_Missed(t *testing.T) {
	dir, git := gitRepo(t)
	write(t, filepath.Join(dir, ".gitattributes"), "*.bin -diff\n")
	if err := os.Symlink("nowhere", filepath.Join(dir, "key.txt")); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-qm", "one")
	hc, oa := newToken(t), fakeOpenAI(41)
	os.Remove(filepath.Join(dir, "key.txt"))
	write(t, filepath.Join(dir, "key.txt"), oa+"\n")
	write(t, filepath.Join(dir, "blob.bin"), "\x00\x01"+hc+"\n")
	git("add", "-A")
	res, err := newScanner(t).Staged(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Kind{}
	for _, f := range res.Findings {
		got[f.File] = f.Kind
	}
	if got["key.txt"] != ProviderKey || got["blob.bin"] != HardcapToken || res.Binary != 1 {
		t.Errorf("findings %+v, binary %d; want the key in key.txt, the token in blob.bin (binary, tokens only)", res.Findings, res.Binary)
	}
}

// TestContent_EncodedToken: a hardcap token the rule engine decodes is a
// hardcap token finding, with the hash the server looks it up by.
func TestContent_EncodedToken(t *testing.T) {
	hc := newToken(t)
	tests := []struct{ name, content string }{
		{"base64 in a Kubernetes Secret", "apiVersion: v1\nkind: Secret\ndata:\n  token: " + base64.StdEncoding.EncodeToString([]byte(hc)) + "\n"},
		{"hex in a header", "curl -H 'X-Auth: " + hex.EncodeToString([]byte(hc)) + "' https://x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := newScanner(t).Content("f", "", 1, tt.content)
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, found, hc)
			var ok bool
			for _, f := range found {
				h, isTok := f.TokenHash()
				ok = ok || (isTok && h == tokens.HashOf(hc))
			}
			if !ok {
				t.Errorf("findings %+v, want the decoded hardcap token", found)
			}
		})
	}
}

func utf16File(s string, bom []byte, big bool) string {
	out := append([]byte{}, bom...)
	for _, u := range utf16.Encode([]rune(s)) {
		if big {
			out = append(out, byte(u>>8), byte(u))
		} else {
			out = append(out, byte(u), byte(u>>8))
		}
	}
	return string(out)
}

// TestFiles_UTF16AndBinary: UTF-16 with a mark is read as text; a binary
// file is searched for hardcap tokens (and counted in Binary).
func TestFiles_UTF16AndBinary(t *testing.T) {
	oa, hc := fakeOpenAI(51), newToken(t)
	tests := []struct {
		name, content string
		kind          Kind
		line, binary  int
	}{
		{"UTF-16LE with a BOM", utf16File("A=1\r\nOPENAI_API_KEY="+oa+"\r\n", []byte{0xFF, 0xFE}, false), ProviderKey, 2, 0},
		{"UTF-16BE with a BOM", utf16File("A=1\nOPENAI_API_KEY="+oa+"\n", []byte{0xFE, 0xFF}, true), ProviderKey, 2, 0},
		{"binary with a token", "\x00\x01\x02\n" + hc + "\x00", HardcapToken, 2, 1},
		{"UTF-16 without a BOM, a token", utf16File("x\nT="+hc, nil, false), HardcapToken, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.env")
			write(t, path, tt.content)
			res, err := newScanner(t).Files(context.Background(), []string{path})
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, res.Findings, oa, hc)
			if len(res.Findings) != 1 || res.Findings[0].Kind != tt.kind || res.Findings[0].Line != tt.line || res.Binary != tt.binary {
				t.Errorf("findings %+v, binary %d; want one %s on line %d, binary %d", res.Findings, res.Binary, tt.kind, tt.line, tt.binary)
			}
		})
	}
}

// TestFragments: large content is cut into bounded fragments that cover
// it, overlapping by fragOverlap, at line ends where lines are short; a
// secret on any line of a long single line or across a cut is found once
// with its line.
func TestFragments(t *testing.T) {
	blob := strings.Repeat("QUJDRGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo0NTY3", 3000) // 120 000 bytes, no newline
	short := strings.Repeat("some ordinary line of text\n", 5000)
	for _, c := range []string{blob, short, short + blob + "\n" + short} {
		frs := fragments(c)
		end := 0
		for i, fr := range frs {
			start := fr.at
			// The overlap is fragOverlap less a short line, or less where it
			// would reach into a long line the previous fragment holds.
			prevLine := strings.LastIndexByte(c[:max(0, start-1)], '\n')
			overlapOK := i == 0 || end-start >= fragOverlap-len("some ordinary line of text\n") || (c[start-1] == '\n' && start-1-prevLine > fragNew)
			if c[start:start+len(fr.text)] != fr.text || len(fr.text) > fragNew+fragOverlap || start > end || !overlapOK {
				t.Fatalf("fragment %d: %d bytes at %d after %d", i, len(fr.text), start, end)
			}
			if fr.line != strings.Count(c[:start], "\n") {
				t.Fatalf("fragment %d: line %d, want %d", i, fr.line, strings.Count(c[:start], "\n"))
			}
			end = start + len(fr.text)
		}
		if end != len(c) {
			t.Fatalf("fragments end at %d of %d", end, len(c))
		}
	}
	oa := fakeOpenAI(61)
	s := newScanner(t)
	for _, at := range []int{0, fragNew - 20, fragNew + 7, 3*fragNew - 30, len(blob) - 1} {
		content := "first\n" + blob[:at] + " " + oa + " " + blob[at:] + "\n"
		found, err := s.Content("f", "", 1, content)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].Rule != "openai-api-key" || found[0].Line != 2 {
			t.Errorf("key at %d: %+v, want one openai-api-key on line 2", at, found)
		}
	}
}
