package proxy_test

import (
	"strings"
	"testing"

	anthropicv1 "github.com/anthropics/anthropic-sdk-go"
	optionv1 "github.com/anthropics/anthropic-sdk-go/option"
	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
)

// TestSDK_AnthropicV2Bearer uses the current official Go SDK, which sends
// the key as a Bearer token, with ANTHROPIC_BASE_URL pointed at hardcap.
func TestSDK_AnthropicV2Bearer(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	client := anthropic.NewClient(option.WithBaseURL(h.srv.URL), option.WithAPIKey(h.token), option.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model:     "claude-haiku-4-5",
		MaxTokens: 50,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello, Claude"))},
	}
	msg, err := client.Messages.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Content[0].Text == "" {
		t.Fatal("empty answer")
	}
	if got := h.ant.Calls()[0].Header.Get("Authorization"); got != "" {
		t.Fatal("the client's Authorization reached the upstream")
	}
	stream := client.Messages.NewStreaming(t.Context(), params)
	acc := anthropic.Message{}
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Usage.OutputTokens == 0 || acc.Content[0].Text == "" {
		t.Fatalf("stream: %+v", acc)
	}
	recs := h.records(2)
	for i, c := range h.ant.Calls() {
		if want := haiku(c.Usage); recs[i].Charged != want {
			t.Errorf("request %d: charged %s, want %s", i, recs[i].Charged, want)
		}
	}
	if budget.Money(msg.Usage.InputTokens*1_000+msg.Usage.OutputTokens*5_000) != recs[0].Charged {
		t.Errorf("the charge disagrees with the usage the SDK saw: %+v", msg.Usage)
	}
}

// TestSDK_AnthropicV1ApiKey uses the v1 Go SDK, which sends X-Api-Key.
func TestSDK_AnthropicV1ApiKey(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	h.ant.SetBehavior(fakeanthropic.Behavior{StartOutputTokens: 2})
	client := anthropicv1.NewClient(optionv1.WithBaseURL(h.srv.URL), optionv1.WithAPIKey(h.token), optionv1.WithMaxRetries(0))
	params := anthropicv1.MessageNewParams{
		Model:     "claude-haiku-4-5",
		MaxTokens: 30,
		Messages:  []anthropicv1.MessageParam{anthropicv1.NewUserMessage(anthropicv1.NewTextBlock("Hi"))},
	}
	stream := client.Messages.NewStreaming(t.Context(), params)
	var text strings.Builder
	for stream.Next() {
		ev := stream.Current()
		if d, ok := ev.AsAny().(anthropicv1.ContentBlockDeltaEvent); ok {
			text.WriteString(d.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.Len() == 0 {
		t.Fatal("no text streamed")
	}
	rec := h.records(1)[0]
	if want := haiku(h.ant.Calls()[0].Usage); rec.Charged != want {
		t.Fatalf("charged %s, want %s", rec.Charged, want)
	}
	// A hard stop is an Anthropic-shaped, non-retried error.
	hs := newHarness(t, harnessOptions{noSync: true, token: budget.Limit{Amount: 1}, onLow: budget.Reject})
	client = anthropicv1.NewClient(optionv1.WithBaseURL(hs.srv.URL), optionv1.WithAPIKey(hs.token))
	_, err := client.Messages.New(t.Context(), params)
	var apiErr *anthropicv1.Error
	if !errorsAs(err, &apiErr) || apiErr.StatusCode != 402 || !strings.Contains(apiErr.Error(), "budget_exhausted") {
		t.Fatalf("got %v, want a 402 budget_exhausted error", err)
	}
	if n := strings.Count(hs.logs.String(), `"message":"refused"`); n != 1 {
		t.Fatalf("hardcap saw %d attempts, want 1: the SDK retried a hard stop", n)
	}
}
