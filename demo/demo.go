// Package demo is a simulated OpenAI and Anthropic provider for trying
// hardcap with no API key and no network: `hardcap serve --demo` mounts
// NewOpenAI and NewAnthropic as its "openai" and "anthropic" upstreams.
//
// The simulators speak the real wire formats of every route hardcap meters
// (Chat Completions, legacy completions, embeddings, Responses, Anthropic
// Messages; streaming and not where the API streams) and of the free routes
// it forwards (model lists, token counting, moderations), and count tokens
// with simple published rules (see PromptTokens and MessagesInputTokens)
// that never exceed the request's bytes, so the proxy's worst-case bound
// can be checked against them. hardcap prices their usage with its catalog
// like any upstream's. The exported wire types and helpers are also reused
// by hardcap's test fakes.
package demo

import (
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
)

// DefaultTokenDelay is the pause between streamed tokens when
// Options.TokenDelay is zero.
const DefaultTokenDelay = 15 * time.Millisecond

// MaxBodyBytes is the largest request body NewOpenAI accepts, in bytes;
// larger bodies get a 413 error.
const MaxBodyBytes = 16 << 20

// Reply lengths, in words (one completion token per word), before any cap.
const (
	// MinReplyWords is the shortest uncapped reply.
	MinReplyWords = 20
	// MaxReplyWords is the longest uncapped reply.
	MaxReplyWords = 80
)

// DefaultModels are the chat and Responses model ids served when
// Options.Models is empty.
var DefaultModels = []string{"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1-nano"}

// CompletionsModels are the model ids POST /v1/completions serves (legacy
// completions take only instruct models).
var CompletionsModels = []string{"gpt-3.5-turbo-instruct"}

// EmbeddingModels are the model ids POST /v1/embeddings serves.
var EmbeddingModels = []string{"text-embedding-3-small", "text-embedding-3-large"}

// ModerationModels are the model ids POST /v1/moderations serves; the
// first is the default.
var ModerationModels = []string{"omni-moderation-latest"}

// modelsCreated is the "created" time (Unix seconds) reported for every model.
const modelsCreated = 1721172741

// Options configures NewOpenAI.
type Options struct {
	// TokenDelay is the pause before each streamed token chunk after the
	// first. Zero means DefaultTokenDelay (15ms); negative means no pause.
	TokenDelay time.Duration
	// Models lists the chat and Responses model ids the OpenAI simulator
	// knows; requests for any other model get a 404 model_not_found error.
	// Empty means DefaultModels.
	Models []string
	// AnthropicModels lists the model ids NewAnthropic knows. Empty means
	// DefaultAnthropicModels.
	AnthropicModels []string
}

// NewOpenAI returns an http.Handler that simulates the OpenAI API under the
// /v1 path prefix:
//
//   - POST /v1/chat/completions answers with a deterministic canned reply
//     about hardcap that quotes the last user message. The reply has between
//     MinReplyWords and MaxReplyWords words depending on the prompt, each
//     word one completion token, cut at the request's cap
//     (max_completion_tokens, else max_tokens) with finish_reason "length".
//     Usage reports PromptTokens for the prompt and the words sent for the
//     completion, summed over the n choices. "stream": true answers with
//     server-sent events, honoring stream_options.include_usage and the
//     request context.
//   - POST /v1/completions (CompletionsModels) answers each prompt and
//     choice with the canned reply cut at max_tokens (16 when absent); each
//     prompt is ceil(len/4)+1 tokens and every best_of candidate is billed.
//   - POST /v1/embeddings (EmbeddingModels) answers a deterministic unit
//     vector per input, as numbers or base64.
//   - POST /v1/responses answers the canned reply as one message, cut at
//     max_output_tokens (status "incomplete"), streamed as named events.
//   - POST /v1/responses/input_tokens and POST /v1/moderations answer as
//     the API does (nothing is ever flagged).
//   - GET /v1/models and GET /v1/models/{id} list the known models of
//     every route.
//
// Every request must carry a non-empty "Authorization: Bearer <key>"; the key
// itself is not checked. Errors use OpenAI's error shape and statuses.
func NewOpenAI(opts Options) http.Handler {
	h := &handler{delay: opts.TokenDelay, known: map[string]bool{}, legacy: set(CompletionsModels), embedding: set(EmbeddingModels)}
	if h.delay == 0 {
		h.delay = DefaultTokenDelay
	}
	models := opts.Models
	if len(models) == 0 {
		models = DefaultModels
	}
	for _, m := range models {
		if !h.known[m] {
			h.known[m] = true
			h.models = append(h.models, m)
		}
	}
	h.listed = append(append(append(slices.Clone(h.models), CompletionsModels...), EmbeddingModels...), ModerationModels...)
	return h
}

func set(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

type handler struct {
	delay time.Duration
	// models and known are the chat and Responses models; legacy and
	// embedding the models of their routes; listed is every model GET
	// /v1/models shows.
	models    []string
	known     map[string]bool
	legacy    map[string]bool
	embedding map[string]bool
	listed    []string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var serve func(http.ResponseWriter, *http.Request)
	method := http.MethodGet
	switch {
	case path == "/v1/chat/completions":
		serve, method = h.chat, http.MethodPost
	case path == "/v1/completions":
		serve, method = h.completions, http.MethodPost
	case path == "/v1/embeddings":
		serve, method = h.embeddings, http.MethodPost
	case path == "/v1/responses":
		serve, method = h.responses, http.MethodPost
	case path == "/v1/responses/input_tokens":
		serve, method = h.inputTokens, http.MethodPost
	case path == "/v1/moderations":
		serve, method = h.moderations, http.MethodPost
	case path == "/v1/models":
		serve = h.list
	case strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		serve = h.model
	default:
		WriteError(w, NewAPIError(http.StatusNotFound, "invalid_request_error", "",
			"Invalid URL ("+r.Method+" "+path+")"))
		return
	}
	if !hasBearer(r) {
		WriteError(w, NewAPIError(http.StatusUnauthorized, "invalid_request_error", "",
			"You didn't provide an API key. You need to provide your API key in an Authorization header "+
				"using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "+
				"hardcap's demo provider accepts any non-empty key."))
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		WriteError(w, NewAPIError(http.StatusMethodNotAllowed, "invalid_request_error", "",
			"Invalid method for URL ("+r.Method+" "+path+")"))
		return
	}
	// As OpenAI does, so that hardcap's records and incident reports show
	// the provider's request ids on the demo too.
	w.Header().Set("x-request-id", "req_"+randomHex(16))
	serve(w, r)
}

// hasBearer reports whether r carries "Authorization: Bearer <non-empty>".
func hasBearer(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(key) != ""
}

func (h *handler) list(w http.ResponseWriter, _ *http.Request) {
	list := ModelList{Object: "list", Data: make([]Model, 0, len(h.listed))}
	for _, m := range h.listed {
		list.Data = append(list.Data, modelEntry(m))
	}
	WriteJSON(w, http.StatusOK, list)
}

func (h *handler) model(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	if !slices.Contains(h.listed, id) {
		WriteError(w, modelNotFound(id))
		return
	}
	WriteJSON(w, http.StatusOK, modelEntry(id))
}

func modelEntry(id string) Model {
	return Model{ID: id, Object: "model", Created: modelsCreated, OwnedBy: "system"}
}

func modelNotFound(id string) *APIError {
	return NewAPIError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"The model `"+truncate(id, 64)+"` does not exist or you do not have access to it.")
}

func (h *handler) chat(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	req, apiErr := ParseChatRequest(body)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	if !h.known[req.Model] {
		WriteError(w, modelNotFound(req.Model))
		return
	}
	reply := NewReply(req, make([]ReplyChoice, req.Choices()))
	for i := range reply.Choices {
		reply.Choices[i] = req.Cap(ReplyTokens(req.Messages, i))
	}
	if !req.Stream {
		WriteJSON(w, http.StatusOK, reply.Completion())
		return
	}
	h.stream(w, r, reply.Chunks(req.IncludeUsage()))
}

// errTooLarge is readAllLimited's error for a body over MaxBodyBytes.
var errTooLarge = errors.New("demo: request body too large")

// readAllLimited reads r's body, at most MaxBodyBytes.
func readAllLimited(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, errTooLarge
	}
	return body, err
}

// body reads an OpenAI request body, answering OpenAI's error when it
// cannot.
func (h *handler) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	return readBody(w, r, func(status int, typ, msg string) {
		code := ""
		if status == http.StatusRequestEntityTooLarge {
			code = "request_too_large"
		}
		WriteError(w, NewAPIError(status, typ, code, msg))
	})
}

// stream sends chunks as server-sent events, pausing before every token
// chunk after the first, and stops early when the client goes away.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, chunks []ChatCompletionChunk) {
	if StartStream(w) != nil {
		return
	}
	ctx := r.Context()
	var timer *time.Timer
	first := true
	for _, c := range chunks {
		if len(c.Choices) == 1 && c.Choices[0].Delta.Role == "" && c.Choices[0].Delta.Content != nil {
			if !first && h.delay > 0 {
				if timer == nil {
					timer = time.NewTimer(h.delay)
					defer timer.Stop()
				} else {
					timer.Reset(h.delay)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			first = false
		}
		if ctx.Err() != nil || WriteEvent(w, c) != nil {
			return
		}
	}
	WriteDone(w)
}

// replySentences are the canned sentences replies are built from.
var replySentences = []string{
	"hardcap sits between your app and OpenAI and meters every request.",
	"Before a call goes out, hardcap reserves the most it could possibly cost.",
	"If that reservation would cross your limit, the call is refused instead of billed.",
	"When the reply ends, the reservation is settled against the usage actually reported.",
	"Streams are metered as they flow, so even a dropped stream is paid for.",
	"This answer comes from the built-in demo provider, so no key and no network are needed.",
	"Every word of this reply counts as one completion token.",
	"Set a small limit and send a few requests to watch it hold.",
}

// maxEchoWords and maxEchoBytes bound how much of the user's message a
// reply quotes.
const (
	maxEchoWords = 6
	maxEchoBytes = 24
)

// ReplyTokens returns the demo's uncapped reply for the given conversation
// and choice index: MinReplyWords to MaxReplyWords words, chosen
// deterministically from the messages' text and the index. Each element is
// one completion token: the first word, then each further word with a
// leading space, so their concatenation is the reply text.
func ReplyTokens(msgs []Message, choice int) []string {
	hash := fnv.New64a()
	last := ""
	for _, m := range msgs {
		t := m.Text()
		hash.Write([]byte(m.Role))
		hash.Write([]byte{0})
		hash.Write([]byte(t))
		hash.Write([]byte{0})
		if m.Role == "user" {
			last = t
		}
	}
	hash.Write([]byte{byte(choice), byte(choice >> 8)})
	sum := mix64(hash.Sum64())
	target := MinReplyWords + int(sum%uint64(MaxReplyWords-MinReplyWords+1))

	words := echo(last)
	for i := int((sum >> 32) % uint64(len(replySentences))); len(words) < target; i++ {
		words = append(words, strings.Fields(replySentences[i%len(replySentences)])...)
	}
	words = words[:min(len(words), MaxReplyWords)]
	for i := 1; i < len(words); i++ {
		words[i] = " " + words[i]
	}
	return words
}

// mix64 is the splitmix64 finalizer; it spreads every input bit over the
// result, which FNV alone does poorly for the last bytes hashed.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// echo returns the opening words of a reply, quoting the start of text.
func echo(text string) []string {
	var quoted []string
	for _, f := range strings.Fields(text) {
		f = strings.Map(func(r rune) rune {
			if r == '"' || unicode.IsControl(r) || r == unicode.ReplacementChar {
				return -1
			}
			return r
		}, f)
		if len(f) > maxEchoBytes {
			f = strings.ToValidUTF8(f[:maxEchoBytes], "")
		}
		if f != "" {
			quoted = append(quoted, f)
		}
	}
	if len(quoted) == 0 {
		return []string{"Demo", "reply:"}
	}
	more := len(quoted) > maxEchoWords
	quoted = quoted[:min(len(quoted), maxEchoWords)]
	quoted[0] = `"` + quoted[0]
	if more {
		quoted[len(quoted)-1] += `..."`
	} else {
		quoted[len(quoted)-1] += `"`
	}
	quoted[len(quoted)-1] += ":"
	return append([]string{"Demo", "reply", "to"}, quoted...)
}
