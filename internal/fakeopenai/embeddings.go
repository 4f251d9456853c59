package fakeopenai

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"

	"github.com/hardcap/hardcap/demo"
)

// Embedding sizes.
const (
	// EmbeddingDimensions is the length of an embedding when the request
	// sets no dimensions.
	EmbeddingDimensions = 4
	// MaxEmbeddingDimensions is the largest dimensions accepted.
	MaxEmbeddingDimensions = 3072
	// MaxEmbeddingInputs is the most inputs one request may hold, as in the
	// OpenAI API.
	MaxEmbeddingInputs = 2048
)

// embeddingsRequest is the part of an embeddings body the fake reads.
type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int64          `json:"dimensions"`
	EncodingFormat *string         `json:"encoding_format"`
}

// EmbeddingList is the embeddings response (object "list").
type EmbeddingList struct {
	// Object is always "list".
	Object string `json:"object"`
	// Data holds one embedding per input, in input order.
	Data []Embedding `json:"data"`
	// Model echoes the request model.
	Model string `json:"model"`
	// Usage is the billed usage; nil omits the field.
	Usage *EmbeddingUsage `json:"usage,omitempty"`
}

// Embedding is one entry of EmbeddingList.Data.
type Embedding struct {
	// Object is always "embedding".
	Object string `json:"object"`
	// Index is the input's position.
	Index int `json:"index"`
	// Embedding is an array of numbers, or with encoding_format "base64" a
	// string of base64 little-endian float32s. The values are deterministic
	// in the input, within [-0.1, 0.1].
	Embedding json.RawMessage `json:"embedding"`
}

// EmbeddingUsage is the embeddings usage object, in tokens.
type EmbeddingUsage struct {
	// PromptTokens counts the tokens of every input.
	PromptTokens int64 `json:"prompt_tokens"`
	// TotalTokens equals PromptTokens.
	TotalTokens int64 `json:"total_tokens"`
}

// embeddings answers POST /v1/embeddings: never a stream, input billed
// only. The input is counted as completions prompts are.
func (s *Server) embeddings(body []byte, b Behavior) (Usage, func(http.ResponseWriter, *http.Request), *demo.APIError) {
	var req embeddingsRequest
	if e := decodeRequest(body, &req); e != nil {
		return Usage{}, nil, e
	}
	if req.Model == "" {
		return Usage{}, nil, noModel()
	}
	inputs, e := parseInputs("input", req.Input)
	if e != nil {
		return Usage{}, nil, e
	}
	if len(inputs) > MaxEmbeddingInputs {
		return Usage{}, nil, demo.BadRequest("input", "", "'$.input' is invalid: at most 2048 inputs are allowed.")
	}
	for _, in := range inputs {
		if !in.isIDs && in.text == "" {
			return Usage{}, nil, demo.BadRequest("input", "", "'$.input' is invalid: inputs must not be empty strings.")
		}
	}
	if e := intRange("dimensions", req.Dimensions, 1, MaxEmbeddingDimensions); e != nil {
		return Usage{}, nil, e
	}
	format := "float"
	if req.EncodingFormat != nil {
		format = *req.EncodingFormat
	}
	if format != "float" && format != "base64" {
		return Usage{}, nil, demo.BadRequest("encoding_format", "invalid_value",
			"Invalid value for 'encoding_format': expected one of 'float' or 'base64'.")
	}

	prompt := promptTokens(inputs)
	if b.PromptTokens != nil {
		prompt = b.PromptTokens(body)
	}
	billed := Usage{PromptTokens: prompt}
	out := EmbeddingList{Object: "list", Data: make([]Embedding, len(inputs)), Model: req.Model}
	dims := int(orDefault(req.Dimensions, EmbeddingDimensions))
	for i, in := range inputs {
		out.Data[i] = Embedding{Object: "embedding", Index: i, Embedding: vector(in, dims, format)}
	}
	if !b.OmitUsage {
		out.Usage = &EmbeddingUsage{PromptTokens: prompt, TotalTokens: prompt}
	}
	const prefix = `{"object":"list","data":[{`
	return billed, func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, b, out, prefix) }, nil
}

// vector returns in's embedding, dims values, as JSON in format.
func vector(in input, dims int, format string) json.RawMessage {
	h := fnv.New64a()
	h.Write([]byte(in.String()))
	seed := h.Sum64()
	v := make([]float32, dims)
	for i := range v {
		seed = seed*6364136223846793005 + 1442695040888963407
		v[i] = float32(int64(seed>>33)%2001-1000) / 10000
	}
	var out any = v
	if format == "base64" {
		buf := make([]byte, 4*dims)
		for i, x := range v {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		out = base64.StdEncoding.EncodeToString(buf)
	}
	raw, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	return raw
}
