package proxy

import (
	"os"
	"testing"
	"time"
)

// TestKeys_Follow: after a reload, a provider whose key source did not
// change keeps it (the key in memory, its fingerprint, its 401 counts); a
// changed source is new and tied to the ledger (its first read recorded);
// the 401s counted against a source left behind (a removed provider, a
// replaced source) reach the ledger at once; Reload and States see the
// new set.
func TestKeys_Follow(t *testing.T) {
	kept, _ := fileProvider(t, "kept", "sk-test-kept-1111")
	gone, _ := fileProvider(t, "gone", "sk-test-gone-2222")
	swapped, _ := fileProvider(t, "swapped", "sk-test-swap-3333")
	rec := &fakeRecorder{}
	ks := NewKeys(KeysOptions{Providers: []*Provider{kept, gone, swapped}, Recorder: rec})
	if _, err := ks.Reload(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kept.Key.reject(now)
	gone.Key.reject(now)
	gone.Key.reject(now)
	swapped.Key.reject(now)

	// The reload's providers are new values, as config.check makes them.
	keptAgain := &Provider{Name: "kept", Kind: KindOpenAI}
	keptAgain.Key, _ = ParseKeySource("file:" + kept.Key.arg)
	swappedAgain, newPath := fileProvider(t, "swapped", "sk-test-swap-4444")
	added, _ := fileProvider(t, "added", "sk-test-added-5555")
	if err := ks.Follow(t.Context(), []*Provider{swappedAgain, keptAgain, added}); err != nil {
		t.Fatal(err)
	}
	if keptAgain.Key != kept.Key {
		t.Fatal("an unchanged source was replaced: its key, fingerprint and counts are lost")
	}
	if swappedAgain.Key == swapped.Key || swappedAgain.Key.keys != ks || added.Key.keys != ks || added.Key.provider != "added" {
		t.Fatal("a new source is not tied to the key ledger")
	}
	rec.mu.Lock()
	if rec.unauth["gone"] != 2 || rec.unauth["swapped"] != 1 || rec.unauth["kept"] != 0 {
		t.Fatalf("401s written at the switch: %v, want gone 2, swapped 1, kept none yet", rec.unauth)
	}
	rec.mu.Unlock()
	st := ks.States()
	if len(st) != 3 || st[0].Provider != "added" || st[1].Provider != "kept" || st[2].Provider != "swapped" {
		t.Fatalf("states after the switch: %+v", st)
	}
	if st[1].Pending != 1 || st[1].Fingerprint != "00171111" {
		t.Fatalf("the kept source's state: %+v, want its fingerprint and its pending 401", st[1])
	}
	got, err := ks.Reload(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].First || got[1].Changed || !got[2].Changed {
		t.Fatalf("reload after the switch: %+v, want added first, kept unchanged, swapped changed", got)
	}
	if _, err := ks.Reload(t.Context(), "gone"); err == nil {
		t.Fatal("a removed provider can still be reloaded")
	}
	if err := os.Remove(newPath); err != nil {
		t.Fatal(err)
	}
}
