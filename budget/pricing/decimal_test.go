package pricing

import (
	"errors"
	"math"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want budget.Rate
	}{
		{"2.5", 2_500_000_000}, // 2.5 USD × 1e9 nano-USD
		{"0", 0},
		{"0.0", 0},
		{"$3", 3_000_000_000},
		{" 15 ", 15_000_000_000},
		{".5", 500_000_000},
		{"5.", 5_000_000_000},
		{"0.075", 75_000_000},
		{"0.000000001", 1},  // exactly one nano-USD per Mtok
		{"0.0000000001", 1}, // 0.1 nano-USD rounds up to 1
		{"0.0000000015", 2}, // 1.5 rounds up to 2
		{"0.000000002000", 2},
		{"1e-9", 1},
		{"2.5E0", 2_500_000_000},
		{"1e+3", 1_000_000_000_000},
		{"0.18000000000000002", 180_000_001},          // float artefact in genai data: 180000000.00000002 rounds up
		{"0.08333333333333334", 83_333_334},           // 83333333.33333334 rounds up
		{"9223372036.854775807", math.MaxInt64},       // largest Rate
		{"0009223372036.854775807000", math.MaxInt64}, // leading and trailing zeros
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if err != nil {
				t.Fatalf("ParseRate(%q): unexpected error %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseRate(%q): got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRateRejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "$", "-1", "+1", "-0", "abc", "1.2.3", "1e", "e5", ".", "..5", "1e99999",
		"1e500", "NaN", "Inf", "0x10", "1_000", "1,5", "1 000", "2.5 USD",
		"9223372036.854775808",  // MaxInt64 + 1
		"9223372036.8547758071", // rounds up past MaxInt64
		"1e19",
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseRate(in)
			if !errors.Is(err, ErrInvalidRate) {
				t.Errorf("ParseRate(%q): got %d, %v; want ErrInvalidRate", in, got, err)
			}
		})
	}
}

// LiteLLM quotes USD per token in exponent form; a Rate is nano-USD per
// million tokens, a shift of 10^15.
func TestLiteLLMExponentRates(t *testing.T) {
	tests := []struct {
		in   string
		want budget.Rate
	}{
		{"2.5e-06", 2_500_000_000},                 // gpt-4o input: 2.5 USD/Mtok
		{"1e-05", 10_000_000_000},                  // gpt-4o output: 10 USD/Mtok
		{"1.25e-06", 1_250_000_000},                // gpt-4o cache read
		{"3e-07", 300_000_000},                     // 0.3 USD/Mtok
		{"1.875e-08", 18_750_000},                  // 0.01875 USD/Mtok
		{"2.5e-09", 2_500_000},                     // 0.0025 USD/Mtok
		{"3.3333333333333335e-05", 33_333_333_334}, // 33333333333.333335 rounds up
		{"0.0002833333333333333", 283_333_333_334}, // 283333333333.3333 rounds up
		{"1e-16", 1},                               // 0.1 nano-USD/Mtok rounds up
		{"0", 0},
		{"0.0", 0},
		{"15", 15_000_000_000_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := scaledRate(tt.in, shiftPerToken)
			if err != nil {
				t.Fatalf("scaledRate(%q): unexpected error %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("scaledRate(%q, per token): got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
	if got, err := scaledRate("10000", shiftPerToken); !errors.Is(err, ErrInvalidRate) {
		t.Errorf("scaledRate(10000 USD/token): got %d, %v; want ErrInvalidRate (1e19 overflows)", got, err)
	}
}

func TestParseCount(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"128000", 128000, false},
		{"128000.0", 128000, false},
		{"1.28e5", 128000, false},
		{"1e6", 1_000_000, false},
		{"0", 0, false},
		{"1.5", 0, true},
		{"-1", 0, true},
		{"1e19", 0, true},
		{"x", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCount(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseCount(%q): got %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
