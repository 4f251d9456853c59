// Command go is the Go client example for hardcap: the official OpenAI SDK
// (github.com/openai/openai-go/v3) pointed at hardcap instead of OpenAI. Only
// the base URL and the API key change; the key is a hardcap token (hc_...).
//
//	export OPENAI_BASE_URL=http://127.0.0.1:8787/v1   # the default
//	export OPENAI_API_KEY=hc_...
//	go run ./examples/go
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// defaultBaseURL is hardcap's OpenAI-shaped route on its default address.
const defaultBaseURL = "http://127.0.0.1:8787/v1"

func main() {
	baseURL := os.Getenv("OPENAI_BASE_URL")
	if baseURL == "" {
		baseURL = defaultBaseURL
	}
	key := os.Getenv("OPENAI_API_KEY")
	if key == "" {
		fmt.Fprintln(os.Stderr, "set OPENAI_API_KEY to a hardcap token (hc_...); see examples/README.md")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, baseURL, key); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run sends one plain chat completion and one streamed chat completion
// through hardcap at baseURL with key, writing the replies to w.
func run(ctx context.Context, w io.Writer, baseURL, key string) error {
	// The only hardcap-specific lines: where to send requests and which key.
	client := openai.NewClient(
		option.WithBaseURL(baseURL),
		option.WithAPIKey(key),
	)

	params := openai.ChatCompletionNewParams{
		Model: openai.ChatModelGPT4oMini,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage("Say hello from behind hardcap."),
		},
		MaxCompletionTokens: openai.Int(64),
	}

	// Plain (non-streaming) completion.
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		return fmt.Errorf("chat completion: %w", err)
	}
	if len(resp.Choices) == 0 {
		return errors.New("chat completion: no choices in the response")
	}
	fmt.Fprintln(w, "== chat completion ==")
	fmt.Fprintln(w, resp.Choices[0].Message.Content)
	fmt.Fprintf(w, "(usage: %d prompt + %d completion tokens)\n",
		resp.Usage.PromptTokens, resp.Usage.CompletionTokens)

	// Streamed completion: print the text as it arrives.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	fmt.Fprintln(w, "== streamed chat completion ==")
	var usage openai.CompletionUsage
	for stream.Next() {
		chunk := stream.Current()
		if len(chunk.Choices) > 0 {
			fmt.Fprint(w, chunk.Choices[0].Delta.Content)
		}
		if chunk.Usage.TotalTokens > 0 {
			usage = chunk.Usage
		}
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("streamed chat completion: %w", err)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "(usage: %d prompt + %d completion tokens)\n",
		usage.PromptTokens, usage.CompletionTokens)
	return nil
}
