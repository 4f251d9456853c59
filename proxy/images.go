package proxy

import "strings"

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
	openAIMaxTiles        = 8
	openAIMaxPatches      = 1536
	anthropicImageTokens  = 4784
	unknownOpenAIImageTok = 2833 + openAIMaxTiles*5667 // the dearest known formula (gpt-4o-mini)
)

// openAIImageFormulas lists model-name prefixes, longest first, with their
// worst-case tokens per image.
var openAIImageFormulas = []struct {
	prefix string
	tokens int64
}{
	{"gpt-4o-mini", 2833 + openAIMaxTiles*5667},
	{"gpt-4.1-mini", ceilMul(openAIMaxPatches, 162, 100)},
	{"gpt-4.1-nano", ceilMul(openAIMaxPatches, 246, 100)},
	{"gpt-5-mini", ceilMul(openAIMaxPatches, 162, 100)},
	{"gpt-5-nano", ceilMul(openAIMaxPatches, 246, 100)},
	{"o4-mini", ceilMul(openAIMaxPatches, 172, 100)},
	{"computer-use-preview", 65 + openAIMaxTiles*129},
	{"gpt-4o", 85 + openAIMaxTiles*170},
	{"gpt-4.1", 85 + openAIMaxTiles*170},
	{"gpt-4.5", 85 + openAIMaxTiles*170},
	{"gpt-5", 70 + openAIMaxTiles*140},
	{"o1", 75 + openAIMaxTiles*150},
	{"o3", 75 + openAIMaxTiles*150},
}

func ceilMul(n, num, den int64) int64 { return (n*num + den - 1) / den }

// openAIImageTokens is the most tokens one image can cost on model. Models
// hardcap has no formula for get the dearest known one.
func openAIImageTokens(model string) int64 {
	for _, f := range openAIImageFormulas {
		if model == f.prefix || strings.HasPrefix(model, f.prefix+"-") {
			return f.tokens
		}
	}
	return unknownOpenAIImageTok
}
