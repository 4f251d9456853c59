package pricing

import "strings"

// limits are a model's token limits; 0 means unknown.
type limits struct {
	contextWindow int64 // max input tokens
	maxOutput     int64 // max output tokens per request
}

// limitTable holds LiteLLM token limits by model name, independent of
// provider, for filling limits the primary price data lacks.
type limitTable struct {
	exact    map[string]limits // by the file's key, e.g. "gpt-4o"
	stripped map[string]limits // by the key after its last "/", e.g. "anthropic/x" -> "x"
}

func newLimitTable() *limitTable {
	return &limitTable{exact: map[string]limits{}, stripped: map[string]limits{}}
}

// add records l under key, and under key's part after its last "/" when the
// key carries a provider prefix. Several prefixed keys that strip to the same
// name keep the largest of each limit: a larger limit only makes hardcap's
// worst-case reservations more conservative.
func (t *limitTable) add(key string, l limits) {
	t.exact[key] = l
	if i := strings.LastIndexByte(key, '/'); i >= 0 && i+1 < len(key) {
		short := key[i+1:]
		old := t.stripped[short]
		t.stripped[short] = limits{
			contextWindow: max(old.contextWindow, l.contextWindow),
			maxOutput:     max(old.maxOutput, l.maxOutput),
		}
	}
}

// get returns the limits recorded for name, filling each limit from the
// first of these that knows it: the exact key, a stripped prefixed key, then
// the same two for name without its own provider prefix, then all four in
// lower case.
func (t *limitTable) get(name string) limits {
	var l limits
	cands := []string{name}
	if i := strings.LastIndexByte(name, '/'); i >= 0 && i+1 < len(name) {
		cands = append(cands, name[i+1:])
	}
	for _, c := range cands {
		if low := strings.ToLower(c); low != c {
			cands = append(cands, low)
		}
	}
	for _, c := range cands {
		for _, m := range []map[string]limits{t.exact, t.stripped} {
			if v, ok := m[c]; ok {
				if l.contextWindow == 0 {
					l.contextWindow = v.contextWindow
				}
				if l.maxOutput == 0 {
					l.maxOutput = v.maxOutput
				}
			}
		}
	}
	return l
}
