package main

import (
	"strings"
	"testing"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	antoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// TestDemo_OfficialSDKs drives `hardcap serve --demo` with the official Go
// SDKs, configured as the README's quickstart says (base URL and the
// hardcap token as the key, nothing else): every route the demo lists must
// parse in the SDK's own types.
func TestDemo_OfficialSDKs(t *testing.T) {
	s, token := startDemo(t)
	ctx := t.Context()
	oai := openai.NewClient(option.WithBaseURL(s.url+"/v1"), option.WithAPIKey(token), option.WithMaxRetries(0))

	chat, err := oai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")},
	})
	if err != nil || chat.Choices[0].Message.Content == "" || chat.Usage.PromptTokens == 0 {
		t.Fatalf("chat: %v %+v", err, chat)
	}
	cs := oai.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")},
	})
	acc := openai.ChatCompletionAccumulator{}
	for cs.Next() {
		acc.AddChunk(cs.Current())
	}
	if cs.Err() != nil || acc.Choices[0].Message.Content == "" {
		t.Fatalf("chat stream: %v", cs.Err())
	}

	comp, err := oai.Completions.New(ctx, openai.CompletionNewParams{
		Model: "gpt-3.5-turbo-instruct", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say hi")},
	})
	if err != nil || comp.Choices[0].Text == "" || comp.Usage.CompletionTokens != 16 {
		t.Fatalf("completions: %v %+v", err, comp)
	}
	compStream := oai.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model: "gpt-3.5-turbo-instruct", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say hi")}, MaxTokens: openai.Int(4),
	})
	var text strings.Builder
	for compStream.Next() {
		for _, c := range compStream.Current().Choices {
			text.WriteString(c.Text)
		}
	}
	if compStream.Err() != nil || text.Len() == 0 {
		t.Fatalf("completions stream: %v", compStream.Err())
	}

	emb, err := oai.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "text-embedding-3-small", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}},
	})
	if err != nil || len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 8 {
		t.Fatalf("embeddings: %v %+v", err, emb)
	}

	resp, err := oai.Responses.New(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello")},
	})
	if err != nil || resp.OutputText() == "" || resp.Usage.InputTokens == 0 {
		t.Fatalf("responses: %v %+v", err, resp)
	}
	rs := oai.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello")},
	})
	var deltas, completed int
	for rs.Next() {
		switch ev := rs.Current(); ev.Type {
		case "response.output_text.delta":
			deltas++
		case "response.completed":
			if ev.Response.Usage.OutputTokens == 0 {
				t.Fatal("response.completed without usage")
			}
			completed++
		}
	}
	if rs.Err() != nil || deltas == 0 || completed != 1 {
		t.Fatalf("responses stream: %v, %d deltas, %d completed", rs.Err(), deltas, completed)
	}
	count, err := oai.Responses.InputTokens.Count(ctx, responses.InputTokenCountParams{
		Model: openai.String("gpt-4o-mini"), Input: responses.InputTokenCountParamsInputUnion{OfString: openai.String("Hello")},
	})
	if err != nil || count.InputTokens == 0 {
		t.Fatalf("input_tokens: %v %+v", err, count)
	}
	model, err := oai.Models.Get(ctx, "gpt-4o-mini")
	if err != nil || model.ID != "gpt-4o-mini" {
		t.Fatalf("models.retrieve: %v %+v", err, model)
	}
	mod, err := oai.Moderations.New(ctx, openai.ModerationNewParams{Input: openai.ModerationNewParamsInputUnion{OfString: openai.String("Hello")}})
	if err != nil || len(mod.Results) != 1 || mod.Results[0].Flagged {
		t.Fatalf("moderations: %v %+v", err, mod)
	}

	ant := anthropic.NewClient(antoption.WithBaseURL(s.url), antoption.WithAPIKey(token), antoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model: "claude-haiku-4-5", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello"))},
	}
	msg, err := ant.Messages.New(ctx, params)
	if err != nil || msg.Content[0].Text == "" || msg.Usage.InputTokens == 0 {
		t.Fatalf("messages: %v %+v", err, msg)
	}
	ms := ant.Messages.NewStreaming(ctx, params)
	streamed := anthropic.Message{}
	for ms.Next() {
		if err := streamed.Accumulate(ms.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if ms.Err() != nil || streamed.Content[0].Text == "" || streamed.Usage.OutputTokens == 0 {
		t.Fatalf("messages stream: %v %+v", ms.Err(), streamed)
	}
	tc, err := ant.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
		Model: "claude-haiku-4-5", Messages: params.Messages,
	})
	if err != nil || tc.InputTokens == 0 {
		t.Fatalf("count_tokens: %v %+v", err, tc)
	}
	page, err := ant.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil || len(page.Data) == 0 || page.Data[0].ID != "claude-haiku-4-5" {
		t.Fatalf("anthropic models: %v %+v", err, page)
	}
}
