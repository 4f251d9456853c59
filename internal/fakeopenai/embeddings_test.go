package fakeopenai

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// embeddingBody is an embeddings body whose input is the raw JSON input
// (optionally followed by more fields).
func embeddingBody(input string) string {
	return `{"model":"text-embedding-3-small","input":` + input + `}`
}

func TestEmbeddingsShape(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	resp := postTo(t, s, "/embeddings", embeddingBody(`["Say hi","Say hello"]`))
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, raw), []string{"data", "model", "object", "usage"}; !slices.Equal(got, want) {
		t.Errorf("got keys %q, want %q", got, want)
	}
	var list struct {
		Object string
		Model  string
		Data   []json.RawMessage
		Usage  json.RawMessage
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || list.Model != "text-embedding-3-small" || len(list.Data) != 2 {
		t.Fatalf("got %s", raw)
	}
	var vecs [][]float64
	for i, d := range list.Data {
		if got, want := keys(t, d), []string{"embedding", "index", "object"}; !slices.Equal(got, want) {
			t.Errorf("data %d: got keys %q, want %q", i, got, want)
		}
		var e struct {
			Object    string
			Index     int
			Embedding []float64
		}
		if err := json.Unmarshal(d, &e); err != nil {
			t.Fatal(err)
		}
		if e.Object != "embedding" || e.Index != i || len(e.Embedding) != EmbeddingDimensions {
			t.Errorf("data %d: got %s", i, d)
		}
		for _, x := range e.Embedding {
			if x < -0.1 || x > 0.1 {
				t.Errorf("data %d: got value %v, want within [-0.1, 0.1]", i, x)
			}
		}
		vecs = append(vecs, e.Embedding)
	}
	if slices.Equal(vecs[0], vecs[1]) {
		t.Errorf("got equal embeddings %v for different inputs", vecs[0])
	}
	// "Say hi" is 2+1 tokens, "Say hello" 3+1.
	if got, want := string(list.Usage), `{"prompt_tokens":7,"total_tokens":7}`; got != want {
		t.Errorf("got usage %s, want %s", got, want)
	}
}

func TestEmbeddingsBilling(t *testing.T) {
	tests := []struct {
		name, input string
		wantInputs  int
		wantPrompt  int64
	}{
		{"string", `"hello world"`, 1, 3 + 1},
		{"strings", `["a","bcdef","abcdefgh"]`, 3, (1 + 1) + (2 + 1) + (2 + 1)},
		{"multibyte", `"héllo"`, 1, 2 + 1}, // 6 bytes
		{"token ids", `[15339,1917,0]`, 1, 3},
		{"token-id arrays", `[[1],[2,3],[4,5,6,7,8]]`, 3, 8},
		{"ignored stream flag", `"abcd","stream":true`, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{BillAtCap: true}) // no completion to inflate
			resp := postTo(t, s, "/embeddings", embeddingBody(tt.input))
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			var list EmbeddingList
			if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
				t.Fatal(err)
			}
			if len(list.Data) != tt.wantInputs {
				t.Errorf("got %d embeddings, want %d", len(list.Data), tt.wantInputs)
			}
			if list.Usage == nil || *list.Usage != (EmbeddingUsage{tt.wantPrompt, tt.wantPrompt}) {
				t.Errorf("got usage %+v, want %d", list.Usage, tt.wantPrompt)
			}
			want := Usage{PromptTokens: tt.wantPrompt}
			if calls := s.Calls(); len(calls) != 1 || calls[0].Usage != want || calls[0].Stream || calls[0].Status != 200 {
				t.Errorf("got calls %+v, want one 200 non-stream call with usage %+v", calls, want)
			}
			if got := s.Billed(); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
}

func TestEmbeddingsFormats(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	decode := func(extra string) Embedding {
		t.Helper()
		resp := postTo(t, s, "/embeddings", embeddingBody(`"same"`+extra))
		var list EmbeddingList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) != 1 {
			t.Fatalf("got %+v (%v), want one embedding", list, err)
		}
		return list.Data[0]
	}
	var floats []float32
	if err := json.Unmarshal(decode(`,"dimensions":8,"encoding_format":"float"`).Embedding, &floats); err != nil || len(floats) != 8 {
		t.Errorf("got %v (%v), want 8 floats", floats, err)
	}
	var again []float32
	json.Unmarshal(decode(`,"dimensions":8`).Embedding, &again)
	if !slices.Equal(floats, again) {
		t.Errorf("got %v then %v, want the same embedding for the same input", floats, again)
	}
	var b64 string
	if err := json.Unmarshal(decode(`,"dimensions":8,"encoding_format":"base64"`).Embedding, &b64); err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.StdEncoding.DecodeString(b64); err != nil || len(raw) != 8*4 {
		t.Errorf("got %d bytes (%v), want 8 float32s", len(raw), err)
	}
	if !strings.Contains(string(decode(``).Embedding), ",") {
		t.Error("got a one-value default embedding")
	}
}
