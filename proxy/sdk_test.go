package proxy_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// sdkClient is the official OpenAI Go SDK pointed at hardcap with a hardcap
// token, exactly as an app would configure it.
func sdkClient(h *harness) openai.Client {
	return openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1"), option.WithAPIKey(h.token), option.WithMaxRetries(0))
}

func TestSDK_ChatCompletion(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	client := sdkClient(h)
	resp, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello to hardcap.")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content == "" {
		t.Fatal("empty completion")
	}
	rec := h.records(1)[0]
	// Hand-computed: gpt-4o-mini is 0.15 USD/Mtok in, 0.60 out, so each
	// prompt token is 150 nano-USD and each completion token 600.
	want := budget.Money(resp.Usage.PromptTokens*150 + resp.Usage.CompletionTokens*600)
	if rec.Charged != want {
		t.Fatalf("got charged %s, want %s for %d+%d tokens", rec.Charged, want, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	}
}

func TestSDK_ChatCompletionStream(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	client := sdkClient(h)
	stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream a hello.")},
		MaxTokens: openai.Int(12),
	})
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 3 || acc.Choices[0].Message.Content == "" {
		t.Fatalf("got %d chunks and %q", chunks, acc.Choices[0].Message.Content)
	}
	// The client did not ask for usage, so it must not see it...
	if acc.Usage.TotalTokens != 0 {
		t.Fatalf("the SDK saw a usage chunk it did not ask for: %+v", acc.Usage)
	}
	// ...but hardcap metered it exactly.
	u := h.up.Calls()[0].Usage
	if u.CompletionTokens > 12 {
		t.Fatalf("upstream produced %d tokens past the cap", u.CompletionTokens)
	}
	rec := h.records(1)[0]
	if want := budget.Money(u.PromptTokens*150 + u.CompletionTokens*600); rec.Charged != want {
		t.Fatalf("got charged %s, want %s", rec.Charged, want)
	}
}

func TestSDK_HardStopIsNotRetried(t *testing.T) {
	h := newHarness(t, harnessOptions{token: budget.Limit{Amount: 1}, onLow: budget.Reject})
	h.up.SetBehavior(fakeopenai.Behavior{})
	// The SDK's default retries are on here: a hard stop must not be retried.
	client := openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1"), option.WithAPIKey(h.token))
	_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusPaymentRequired || apiErr.Code != "budget_exhausted" {
		t.Fatalf("got %v, want a 402 budget_exhausted error", err)
	}
	if n := len(h.up.Calls()); n != 0 {
		t.Fatalf("upstream got %d calls", n)
	}
	if n := strings.Count(h.logs.String(), `"message":"refused"`); n != 1 {
		t.Fatalf("hardcap saw %d attempts, want 1: the SDK retried a hard stop", n)
	}
}

func TestSDK_ResponsesAndEmbeddings(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	client := sdkClient(h)
	params := responses.ResponseNewParams{
		Model:           "gpt-4o-mini",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello to hardcap.")},
		MaxOutputTokens: openai.Int(20),
	}
	resp, err := client.Responses.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.OutputText() == "" {
		t.Fatal("empty response")
	}
	stream := client.Responses.NewStreaming(t.Context(), params)
	var text strings.Builder
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.Len() == 0 {
		t.Fatal("no text streamed")
	}
	emb, err := client.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one", "two"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 {
		t.Fatalf("got %d embeddings", len(emb.Data))
	}
	recs := h.records(3)
	calls := h.up.Calls()
	for i := 0; i < 2; i++ {
		u := calls[i].Usage
		if want := budget.Money((u.PromptTokens-u.CachedTokens)*150 + u.CachedTokens*75 + u.CompletionTokens*600); recs[i].Charged != want {
			t.Errorf("responses %d: charged %s, want %s", i, recs[i].Charged, want)
		}
	}
	if want := budget.Money(emb.Usage.PromptTokens * 20); recs[2].Charged != want {
		t.Errorf("embeddings: charged %s, want %s", recs[2].Charged, want)
	}
}
