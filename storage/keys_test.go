package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	testKeyA = "sk-proj-LEDGERTESTkeyAAAA0123456789abcdefghijkl"
	testKeyB = "sk-proj-LEDGERTESTkeyBBBB0123456789abcdefghijkl"
)

func seen(provider, key string, at time.Time) ProviderKeySeen {
	return ProviderKeySeen{Provider: provider, Key: key, SourceKind: "file", Source: "file:/run/keys/" + provider, RotateEvery: 90 * 24 * time.Hour, Time: at}
}

func mustSee(t *testing.T, db *DB, s ProviderKeySeen) ProviderKeyChange {
	t.Helper()
	ch, err := db.SeeProviderKey(WithActor(ctx, "admin"), s)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func providerKey(t *testing.T, db *DB, provider string) ProviderKeyInfo {
	t.Helper()
	keys, err := db.ProviderKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Provider == provider {
			return k
		}
	}
	t.Fatalf("no ledger entry for %s in %+v", provider, keys)
	return ProviderKeyInfo{}
}

// TestSeeProviderKey_Rotation: a key seen again moves its last-seen time; a
// different key is a rotation, with the old one in the history and both in
// the audit log; the database file holds neither key.
func TestSeeProviderKey_Rotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(5*time.Minute), t0.Add(30*24*time.Hour)

	first := mustSee(t, db, seen("openai", testKeyA, t0))
	if !first.First || first.Rotated || len(first.Fingerprint) != 64 {
		t.Fatalf("first read got %+v, want First with a 64-hex fingerprint", first)
	}
	if again := mustSee(t, db, seen("openai", testKeyA, t1)); again.First || again.Rotated || again.Fingerprint != first.Fingerprint {
		t.Fatalf("the same key again got %+v, want no change", again)
	}
	k := providerKey(t, db, "openai")
	if !k.FirstSeen.Equal(t0) || !k.LastSeen.Equal(t1) || !k.RotateBy.Equal(t0.Add(90*24*time.Hour)) || len(k.History) != 0 {
		t.Fatalf("after two reads got %+v", k)
	}

	rot := mustSee(t, db, seen("openai", testKeyB, t2))
	if !rot.Rotated || rot.Previous != first.Fingerprint || rot.Fingerprint == first.Fingerprint {
		t.Fatalf("a new key got %+v, want a rotation from %s", rot, first.Fingerprint)
	}
	k = providerKey(t, db, "openai")
	if k.Fingerprint != rot.Fingerprint || !k.FirstSeen.Equal(t2) || !k.RotateBy.Equal(t2.Add(90*24*time.Hour)) {
		t.Fatalf("after the rotation the current key is %+v", k)
	}
	if len(k.History) != 1 || k.History[0].Fingerprint != first.Fingerprint || !k.History[0].FirstSeen.Equal(t0) || !k.History[0].LastSeen.Equal(t1) {
		t.Fatalf("history got %+v, want the old key seen %v to %v", k.History, t0, t1)
	}
	if k.Overdue(t2.Add(89*24*time.Hour)) || !k.Overdue(t2.Add(90*24*time.Hour)) {
		t.Fatal("Overdue is wrong around RotateBy")
	}

	log, err := db.AuditLog(AuditFilter{Kind: "provider_key"})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Action != "create" || log[1].Action != "rotate" || log[1].Actor != "admin" || log[1].Target != "openai" ||
		!strings.Contains(log[1].Detail, ShortFingerprint(first.Fingerprint)+" -> "+ShortFingerprint(rot.Fingerprint)) {
		t.Fatalf("audit log got %+v", log)
	}

	// A read that crossed a newer one does not undo the rotation.
	if late := mustSee(t, db, seen("openai", testKeyA, t2.Add(-time.Second))); late.Rotated {
		t.Fatalf("a stale read got %+v, want no rotation", late)
	}
	if k := providerKey(t, db, "openai"); k.Fingerprint != rot.Fingerprint || len(k.History) != 1 {
		t.Fatalf("a stale read changed the ledger: %+v", k)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{testKeyA, testKeyB, "LEDGERTEST"} {
		if strings.Contains(string(raw), key) {
			t.Fatalf("the database file holds %q", key)
		}
	}
	// The fingerprint is keyed: not the plain SHA-256 of the key.
	plain := sha256.Sum256([]byte(testKeyA))
	if first.Fingerprint == hex.EncodeToString(plain[:]) || strings.Contains(string(raw), hex.EncodeToString(plain[:])) {
		t.Fatal("the fingerprint is an unkeyed hash")
	}
	rep, err := Check(path)
	if err != nil || !rep.OK() {
		t.Fatalf("Check got %v, %+v", err, rep.Problems)
	}

	// The fingerprint key survives a restart: the same key is no rotation.
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if ch := mustSee(t, db2, seen("openai", testKeyB, t2.Add(time.Hour))); ch.Rotated || ch.First || ch.Fingerprint != rot.Fingerprint {
		t.Fatalf("after a restart the same key got %+v", ch)
	}
}

// TestSeeProviderKey_KeyedPerDatabase: two databases give the same key
// different fingerprints, so a fingerprint says nothing outside its file.
func TestSeeProviderKey_KeyedPerDatabase(t *testing.T) {
	a := mustSee(t, openTest(t, Options{}), seen("openai", testKeyA, time.Time{}))
	b := mustSee(t, openTest(t, Options{}), seen("openai", testKeyA, time.Time{}))
	if a.Fingerprint == b.Fingerprint {
		t.Fatal("two databases fingerprint the same key alike: the hash is not keyed per database")
	}
}

// TestProviderKey_Unauthorized: 401 counts go to the key that was current
// when they came, and a rotation starts the new key at zero.
func TestProviderKey_Unauthorized(t *testing.T) {
	db := openTest(t, Options{})
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	mustSee(t, db, seen("openai", testKeyA, t0))
	if err := db.AddUnauthorized(ctx, "openai", 3, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	s := seen("openai", testKeyA, t0.Add(5*time.Minute))
	s.Unauthorized, s.LastUnauthorized = 2, t0.Add(4*time.Minute)
	mustSee(t, db, s)
	if k := providerKey(t, db, "openai"); k.Unauthorized != 5 || !k.LastUnauthorized.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("got %d 401s, last %v; want 5, last at +4m", k.Unauthorized, k.LastUnauthorized)
	}
	s = seen("openai", testKeyB, t0.Add(10*time.Minute))
	s.Unauthorized, s.LastUnauthorized = 1, t0.Add(9*time.Minute)
	mustSee(t, db, s)
	k := providerKey(t, db, "openai")
	if k.Unauthorized != 0 || len(k.History) != 1 || k.History[0].Unauthorized != 6 {
		t.Fatalf("after the rotation got %d 401s and history %+v; want 0 and the old key with 6", k.Unauthorized, k.History)
	}
	// A provider without a key in the ledger is skipped.
	if err := db.AddUnauthorized(ctx, "groq", 1, t0); err != nil {
		t.Fatal(err)
	}
}

// TestProviderKey_HistoryBounded: the history keeps the newest
// MaxProviderKeyHistory replaced keys.
func TestProviderKey_HistoryBounded(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	var fps []string
	for i := range MaxProviderKeyHistory + 5 {
		fps = append(fps, mustSee(t, db, seen("openai", fmt.Sprintf("sk-%d", i), t0.Add(time.Duration(i)*time.Hour))).Fingerprint)
	}
	k := providerKey(t, db, "openai")
	if len(k.History) != MaxProviderKeyHistory {
		t.Fatalf("history holds %d, want %d", len(k.History), MaxProviderKeyHistory)
	}
	if got, want := k.History[0].Fingerprint, fps[len(fps)-1-MaxProviderKeyHistory]; got != want {
		t.Fatalf("the oldest kept is %s, want %s", got, want)
	}
}

// TestSeeProviderKey_BadInput: a read without a provider or a key is
// refused and records nothing.
func TestSeeProviderKey_BadInput(t *testing.T) {
	db := openTest(t, Options{})
	for name, s := range map[string]ProviderKeySeen{
		"no provider":   {Key: testKeyA},
		"no key":        {Provider: "openai"},
		"long provider": {Provider: strings.Repeat("p", 65), Key: testKeyA},
		"negative":      {Provider: "openai", Key: testKeyA, RotateEvery: -time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := db.SeeProviderKey(ctx, s)
			if !errors.Is(err, ErrInvalidProviderKey) {
				t.Fatalf("got %v, want ErrInvalidProviderKey", err)
			}
			if strings.Contains(err.Error(), testKeyA) {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
	if err := db.AddUnauthorized(ctx, "", 1, time.Time{}); !errors.Is(err, ErrInvalidProviderKey) {
		t.Fatalf("AddUnauthorized without a provider got %v", err)
	}
	keys, err := db.ProviderKeys()
	if err != nil || len(keys) != 0 {
		t.Fatalf("got %+v, %v; want nothing recorded", keys, err)
	}
	if log, _ := db.AuditLog(AuditFilter{}); len(log) != 0 {
		t.Fatalf("audit log got %+v", log)
	}
}

// TestSeeProviderKey_ReplacedKeyBack: a key put back after it was
// replaced (A, then B, then A again) keeps its first-seen time, so its due
// date, and its 401s; it leaves the history, the change says Reused, and
// the audit log's rotation says a replaced key is in use again. A later
// new key is an ordinary rotation that clears ReusedAt.
func TestSeeProviderKey_ReplacedKeyBack(t *testing.T) {
	db := openTest(t, Options{})
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	const testKeyC = "sk-proj-LEDGERTESTkeyCCCC0123456789abcdefghijkl"
	type want struct {
		rotated, reused bool
		firstSeen       time.Time
		reusedAt        time.Time
		unauthorized    uint64
		history         []string // keys, oldest first
	}
	fp := map[string]string{}
	steps := []struct {
		name string
		key  string
		at   time.Time
		n401 uint64 // 401s to the key current before this read
		want want
	}{
		{"first A", testKeyA, t0, 0, want{firstSeen: t0}},
		{"to B", testKeyB, t0.Add(10 * 24 * time.Hour), 2, want{rotated: true, firstSeen: t0.Add(10 * 24 * time.Hour), history: []string{testKeyA}}},
		{"back to A", testKeyA, t0.Add(20 * 24 * time.Hour), 0, want{rotated: true, reused: true, firstSeen: t0, reusedAt: t0.Add(20 * 24 * time.Hour), unauthorized: 2, history: []string{testKeyB}}},
		{"A again", testKeyA, t0.Add(21 * 24 * time.Hour), 0, want{firstSeen: t0, reusedAt: t0.Add(20 * 24 * time.Hour), unauthorized: 2, history: []string{testKeyB}}},
		{"to new C", testKeyC, t0.Add(30 * 24 * time.Hour), 0, want{rotated: true, firstSeen: t0.Add(30 * 24 * time.Hour), history: []string{testKeyB, testKeyA}}},
	}
	for _, st := range steps {
		s := seen("openai", st.key, st.at)
		s.Unauthorized, s.LastUnauthorized = st.n401, st.at.Add(-time.Minute)
		ch := mustSee(t, db, s)
		fp[st.key] = ch.Fingerprint
		k := providerKey(t, db, "openai")
		var hist []string
		for _, h := range k.History {
			hist = append(hist, h.Fingerprint)
		}
		var wantHist []string
		for _, key := range st.want.history {
			wantHist = append(wantHist, fp[key])
		}
		if ch.Rotated != st.want.rotated || ch.Reused != st.want.reused || !k.FirstSeen.Equal(st.want.firstSeen) ||
			!k.RotateBy.Equal(st.want.firstSeen.Add(90*24*time.Hour)) || !k.ReusedAt.Equal(st.want.reusedAt) ||
			k.Unauthorized != st.want.unauthorized || !k.LastSeen.Equal(st.at) || strings.Join(hist, ",") != strings.Join(wantHist, ",") {
			t.Fatalf("%s: change %+v, ledger %+v; want %+v", st.name, ch, k, st.want)
		}
	}
	log, err := db.AuditLog(AuditFilter{Kind: "provider_key"})
	if err != nil || len(log) != 4 {
		t.Fatalf("audit log got %+v, %v", log, err)
	}
	if e := log[2]; e.Action != "rotate" || !strings.Contains(e.Detail, "a replaced key is in use again") ||
		!strings.Contains(e.Detail, ShortFingerprint(fp[testKeyB])+" -> "+ShortFingerprint(fp[testKeyA])) {
		t.Fatalf("the entry of the key put back is %+v", e)
	}
	if e := log[3]; strings.Contains(e.Detail, "in use again") {
		t.Fatalf("a new key's entry says %q", e.Detail)
	}
}
