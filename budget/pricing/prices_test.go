package pricing

import (
	"errors"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

// usd converts whole and fractional nano-USD written as a decimal dollar
// string, for readable expectations.
func usd(t *testing.T, s string) budget.Money {
	t.Helper()
	m, err := budget.ParseUSD(s)
	if err != nil {
		t.Fatalf("ParseUSD(%q): %v", s, err)
	}
	return m
}

func rate(t *testing.T, s string) budget.Rate {
	t.Helper()
	r, err := ParseRate(s)
	if err != nil {
		t.Fatalf("ParseRate(%q): %v", s, err)
	}
	return r
}

func TestTieredAt(t *testing.T) {
	sonnet := Tiered{Base: 3_000_000_000, Tiers: []Tier{{Start: 200_000, Rate: 6_000_000_000}}, Set: true}
	two := Tiered{Base: 1, Tiers: []Tier{{Start: 10, Rate: 2}, {Start: 20, Rate: 3}}, Set: true}
	unsorted := Tiered{Base: 1, Tiers: []Tier{{Start: 20, Rate: 3}, {Start: 10, Rate: 2}}, Set: true}
	tests := []struct {
		name  string
		t     Tiered
		input int64
		want  budget.Rate
	}{
		{"zero input pays base", sonnet, 0, 3_000_000_000},
		{"below threshold", sonnet, 199_999, 3_000_000_000},
		{"at threshold still base (input > start)", sonnet, 200_000, 3_000_000_000},
		{"past threshold", sonnet, 200_001, 6_000_000_000},
		{"two tiers, first", two, 11, 2},
		{"two tiers, at second start", two, 20, 2},
		{"two tiers, second", two, 21, 3},
		{"unsorted tiers use highest start passed", unsorted, 21, 3},
		{"unsorted tiers, middle", unsorted, 15, 2},
		{"flat", Flat(7), 1 << 40, 7},
		{"unset", Tiered{}, 5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.At(tt.input); got != tt.want {
				t.Errorf("At(%d): got %d, want %d", tt.input, got, tt.want)
			}
		})
	}
}

// gpt4o are gpt-4o's prices in the embedded data: 2.5 input, 1.25 cache
// read, 10 output USD per million tokens; no cache-write or reasoning price.
func gpt4o(t *testing.T) Prices {
	return Prices{Input: Flat(rate(t, "2.5")), CacheRead: Flat(rate(t, "1.25")), Output: Flat(rate(t, "10"))}
}

// sonnet45 are claude-sonnet-4-5's prices: input 3 -> 6, cache read 0.3 ->
// 0.6, 5m write 3.75 -> 7.5, 1h write 6 -> 12, output 15 -> 22.5 USD/Mtok
// above 200k input tokens.
func sonnet45(t *testing.T) Prices {
	tier := func(base, above string) Tiered {
		return Tiered{Base: rate(t, base), Tiers: []Tier{{Start: 200_000, Rate: rate(t, above)}}, Set: true}
	}
	return Prices{
		Input: tier("3", "6"), CacheRead: tier("0.3", "0.6"), CacheWrite: tier("3.75", "7.5"),
		CacheWrite1h: tier("6", "12"), Output: tier("15", "22.5"),
	}
}

func TestCost(t *testing.T) {
	tests := []struct {
		name   string
		prices Prices
		u      budget.Usage
		want   string // USD
	}{
		{
			// 6,000 uncached × 2.5 = 0.015; 4,000 cached × 1.25 = 0.005;
			// 2,000 output (500 of them reasoning, billed as output) × 10 = 0.02.
			"gpt-4o cached and reasoning", gpt4o(t),
			budget.Usage{InputTokens: 10_000, CacheReadTokens: 4_000, OutputTokens: 2_000, ReasoningTokens: 500},
			"0.04",
		},
		{
			// 1M × 2.5 + 1M × 10 = 12.5.
			"gpt-4o one million each", gpt4o(t),
			budget.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000},
			"12.5",
		},
		{
			// No cache-write price: 1,000 5m writes at input 2.5 = 0.0025 and
			// 1,000 1h writes at twice input, 5 = 0.005.
			"gpt-4o cache writes fall back to input", gpt4o(t),
			budget.Usage{InputTokens: 2_000, CacheWriteTokens: 1_000, CacheWrite1hTokens: 1_000},
			"0.0075",
		},
		{
			// 65,000 × 3 = 0.195; 20,000 × 0.3 = 0.006; 10,000 × 3.75 =
			// 0.0375; 5,000 × 6 = 0.03; 1,000 × 15 = 0.015. Sum 0.2835.
			"claude-sonnet-4-5 below 200k", sonnet45(t),
			budget.Usage{InputTokens: 100_000, CacheReadTokens: 20_000, CacheWriteTokens: 10_000, CacheWrite1hTokens: 5_000, OutputTokens: 1_000},
			"0.2835",
		},
		{
			// 200,000 × 3 = 0.6: exactly at the threshold is still base.
			"claude-sonnet-4-5 at 200k", sonnet45(t),
			budget.Usage{InputTokens: 200_000},
			"0.6",
		},
		{
			// 200,001 × 6 = 1.200006: every token at the tier rate.
			"claude-sonnet-4-5 at 200k+1", sonnet45(t),
			budget.Usage{InputTokens: 200_001},
			"1.200006",
		},
		{
			// Tier chosen by total input 250,000 (cache included):
			// 150,000 × 6 = 0.9; 50,000 × 0.6 = 0.03; 40,000 × 7.5 = 0.3;
			// 10,000 × 12 = 0.12; 2,000 × 22.5 = 0.045. Sum 1.395.
			"claude-sonnet-4-5 above 200k", sonnet45(t),
			budget.Usage{InputTokens: 250_000, CacheReadTokens: 50_000, CacheWriteTokens: 40_000, CacheWrite1hTokens: 10_000, OutputTokens: 2_000},
			"1.395",
		},
		{
			// sonar-deep-research: input 2, output 8, reasoning 3.
			// 1,000 × 2 = 0.002; 6,000 × 8 = 0.048; 4,000 × 3 = 0.012.
			"separate reasoning price",
			Prices{Input: Flat(rate(t, "2")), Output: Flat(rate(t, "8")), OutputReasoning: Flat(rate(t, "3"))},
			budget.Usage{InputTokens: 1_000, OutputTokens: 10_000, ReasoningTokens: 4_000},
			"0.062",
		},
		{
			// No 1h price: 1h writes at max(cache write 1.25, input 1) = 1.25.
			// 1,000,000 × 1.25 = 1.25.
			"1h write falls back to larger of write and twice input",
			Prices{Input: Flat(rate(t, "1")), CacheWrite: Flat(rate(t, "1.25")), Output: Flat(rate(t, "5"))},
			budget.Usage{InputTokens: 1_000_000, CacheWrite1hTokens: 1_000_000},
			"2",
		},
		{
			// A 1h write price above twice input (odd, but possible) wins.
			"1h write falls back to write when it is dearer",
			Prices{Input: Flat(rate(t, "1")), CacheWrite: Flat(rate(t, "3")), Output: Flat(rate(t, "5"))},
			budget.Usage{InputTokens: 1_000_000, CacheWrite1hTokens: 1_000_000},
			"3",
		},
		{
			// 0.075 USD/Mtok is 75 nano-USD per token: exact, no rounding.
			"one token at 0.075", Prices{Input: Flat(rate(t, "0.075")), Output: Flat(0)},
			budget.Usage{InputTokens: 1},
			"0.000000075",
		},
		{
			// 0.000075 USD/Mtok is 0.075 nano-USD per token: rounds up to 1.
			"one token at 0.000075 rounds up", Prices{Input: Flat(rate(t, "0.000075")), Output: Flat(0)},
			budget.Usage{InputTokens: 1},
			"0.000000001",
		},
		{
			// Three tokens at 0.5 nano-USD each sum to 1.5 before the single
			// rounding: 2, not 3.
			"rounded once over the sum",
			Prices{Input: Flat(rate(t, "0.0005")), CacheRead: Flat(rate(t, "0.0005")), CacheWrite: Flat(rate(t, "0.0005")), Output: Flat(0)},
			budget.Usage{InputTokens: 3, CacheReadTokens: 1, CacheWriteTokens: 1},
			"0.000000002",
		},
		{"zero usage", gpt4o(t), budget.Usage{}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.prices.Cost(tt.u)
			if err != nil {
				t.Fatalf("Cost(%+v): unexpected error %v", tt.u, err)
			}
			if want := usd(t, tt.want); got != want {
				t.Errorf("Cost(%+v): got %s, want %s", tt.u, got, want)
			}
		})
	}
}

func TestCostRejects(t *testing.T) {
	p := gpt4o(t)
	tests := []struct {
		name   string
		prices Prices
		u      budget.Usage
		want   error
	}{
		{"negative input", p, budget.Usage{InputTokens: -1}, ErrInvalidUsage},
		{"negative output", p, budget.Usage{OutputTokens: -1}, ErrInvalidUsage},
		{"negative cache read", p, budget.Usage{InputTokens: 5, CacheReadTokens: -1}, ErrInvalidUsage},
		{"cache read above input", p, budget.Usage{InputTokens: 5, CacheReadTokens: 6}, ErrInvalidUsage},
		{"cache parts sum above input", p, budget.Usage{InputTokens: 5, CacheReadTokens: 2, CacheWriteTokens: 2, CacheWrite1hTokens: 2}, ErrInvalidUsage},
		{"reasoning above output", p, budget.Usage{OutputTokens: 5, ReasoningTokens: 6}, ErrInvalidUsage},
		{"huge counts overflow", Prices{Input: Flat(1 << 62), Output: Flat(1)}, budget.Usage{InputTokens: 1 << 62}, budget.ErrOverflow},
		{"no output price for output", Prices{Input: Flat(1)}, budget.Usage{InputTokens: 1, OutputTokens: 1}, ErrModelNotPriced},
		{"no input price", Prices{Output: Flat(1)}, budget.Usage{}, ErrModelNotPriced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.prices.Cost(tt.u)
			if !errors.Is(err, tt.want) {
				t.Errorf("Cost(%+v): got %s, %v; want %v", tt.u, got, err, tt.want)
			}
		})
	}
}

func TestWorstRates(t *testing.T) {
	tests := []struct {
		name            string
		prices          Prices
		bound           int64
		wantIn, wantOut string // USD per Mtok
	}{
		{"gpt-4o", gpt4o(t), 128_000, "2.5", "10"},
		// Below or at 200k only base rates apply; the dearest input token
		// is a 1h cache write at 6.
		{"sonnet-4-5 bound 200k", sonnet45(t), 200_000, "6", "15"},
		{"sonnet-4-5 bound 0", sonnet45(t), 0, "6", "15"},
		// A request with 200,001 input tokens reaches the tier: 1h write 12,
		// output 22.5.
		{"sonnet-4-5 bound 200k+1", sonnet45(t), 200_001, "12", "22.5"},
		{"sonnet-4-5 bound 1M", sonnet45(t), 1_000_000, "12", "22.5"},
		{"reasoning dearer than output",
			Prices{Input: Flat(rate(t, "1")), Output: Flat(rate(t, "4")), OutputReasoning: Flat(rate(t, "9"))},
			10, "1", "9"},
		{"cache read dearer than input (odd data)",
			Prices{Input: Flat(rate(t, "1")), CacheRead: Flat(rate(t, "3")), Output: Flat(rate(t, "4"))},
			10, "3", "4"},
		{"tier cheaper than base keeps base",
			Prices{Input: Tiered{Base: rate(t, "5"), Tiers: []Tier{{Start: 10, Rate: rate(t, "1")}}, Set: true}, Output: Flat(rate(t, "4"))},
			100, "5", "4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, out := tt.prices.WorstRates(tt.bound)
			if want := rate(t, tt.wantIn); in != want {
				t.Errorf("WorstRates(%d) input: got %d, want %d", tt.bound, in, want)
			}
			if want := rate(t, tt.wantOut); out != want {
				t.Errorf("WorstRates(%d) output: got %d, want %d", tt.bound, out, want)
			}
		})
	}
}

// WorstRates must bound Cost for every split of a request's tokens.
func TestWorstRatesBoundCost(t *testing.T) {
	p := sonnet45(t)
	for _, bound := range []int64{1_000, 200_000, 200_001, 500_000} {
		in, out := p.WorstRates(bound)
		ceiling, err := budget.Cost(budget.TokenCharge{Tokens: bound, Rate: in}, budget.TokenCharge{Tokens: 1_000, Rate: out})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []budget.Usage{
			{InputTokens: bound, OutputTokens: 1_000},
			{InputTokens: bound, CacheWrite1hTokens: bound, OutputTokens: 1_000, ReasoningTokens: 1_000},
			{InputTokens: bound, CacheWriteTokens: bound / 2, CacheReadTokens: bound / 2, OutputTokens: 1_000},
		} {
			got, err := p.Cost(u)
			if err != nil {
				t.Fatal(err)
			}
			if got > ceiling {
				t.Errorf("bound %d: Cost(%+v) = %s exceeds WorstRates ceiling %s", bound, u, got, ceiling)
			}
		}
	}
}
