package proxy

import (
	"regexp"
	"strings"
)

// Image input bounds, in tokens per image, from the providers' documented
// formulas at their worst case. An image costs the same whether it comes
// as a URL or inline; inline data is also counted as text by the byte
// bound, which only over-reserves.
//
// OpenAI, high detail (the worst of "auto"): the image is fitted into
// 2048×2048, then its short side scaled to 768, so it covers at most
// 2 × 4 = 8 tiles of 512 px: base + 8 × per-tile tokens. Patch-based models
// cover at most 1,536 patches of 32 px, times a per-model multiplier.
// Anthropic: tokens ≈ width × height / 750 after downscaling; current models
// read up to 2,576 px on the long edge, at most 4,784 tokens (older ones
// 1,568 px and about 1,600 tokens).
const (
	openAIMaxTiles       = 8
	openAIMaxPatches     = 1536
	anthropicImageTokens = 4784
	// unknownOpenAIImageTok is the dearest bound of every formula below
	// (gpt-4o-mini's tiles). Newer sizing (the Codex series and later
	// models read images as patches with budgets up to 10,000 patches at
	// "original" detail, times a multiplier of at most 2.46: 24,600) stays
	// under it.
	unknownOpenAIImageTok = 2833 + openAIMaxTiles*5667
)

// openAIImageFamilies are the model families whose image sizing the vision
// guide documents, with their worst case per image. A family matches its
// own name and its dated snapshots only ("gpt-5" and "gpt-5-2025-08-07",
// not "gpt-5.5" or "gpt-5-codex"): a model added later, or one the guide
// sizes differently, gets the dearest bound rather than a cheaper
// neighbour's.
var openAIImageFamilies = map[string]int64{
	"gpt-4o":               85 + openAIMaxTiles*170,
	"chatgpt-4o-latest":    85 + openAIMaxTiles*170,
	"gpt-4.1":              85 + openAIMaxTiles*170,
	"gpt-4.5-preview":      85 + openAIMaxTiles*170,
	"gpt-4o-mini":          2833 + openAIMaxTiles*5667,
	"gpt-5":                70 + openAIMaxTiles*140,
	"gpt-5-chat-latest":    70 + openAIMaxTiles*140,
	"o1":                   75 + openAIMaxTiles*150,
	"o1-pro":               75 + openAIMaxTiles*150,
	"o3":                   75 + openAIMaxTiles*150,
	"computer-use-preview": 65 + openAIMaxTiles*129,
	"gpt-4.1-mini":         ceilMul(openAIMaxPatches, 162, 100),
	"gpt-4.1-nano":         ceilMul(openAIMaxPatches, 246, 100),
	"gpt-5-mini":           ceilMul(openAIMaxPatches, 162, 100),
	"gpt-5-nano":           ceilMul(openAIMaxPatches, 246, 100),
	"o4-mini":              ceilMul(openAIMaxPatches, 172, 100),
	"codex-mini-latest":    ceilMul(openAIMaxPatches, 172, 100),
}

// snapshotDate is the date suffix of a model snapshot.
var snapshotDate = regexp.MustCompile(`-\d{4}-\d{2}-\d{2}$`)

func ceilMul(n, num, den int64) int64 { return (n*num + den - 1) / den }

// openAIImageTokens is the most tokens one image can cost on model: its
// family's documented worst case, else the dearest known one.
func openAIImageTokens(model string) int64 {
	name := strings.ToLower(model)
	if t, ok := openAIImageFamilies[name]; ok {
		return t
	}
	if t, ok := openAIImageFamilies[snapshotDate.ReplaceAllString(name, "")]; ok {
		return t
	}
	return unknownOpenAIImageTok
}
