package budget

import (
	"errors"
	"testing"
)

// gpt-4o: 2.50 USD/Mtok input (2500 nano/token), 10 USD/Mtok output
// (10000 nano/token).
var gpt4o = Quote{InputTokens: 1000, InputRate: 2_500_000_000, MaxOutput: 16384, OutputRate: 10_000_000_000}

func TestQuote_Cost(t *testing.T) {
	got, err := gpt4o.Cost(100)
	// 1000*2500 + 100*10000 = 3,500,000 nano.
	if err != nil || got != 3_500_000 {
		t.Fatalf("got %d, %v; want 3500000", got, err)
	}
	q := gpt4o
	q.Choices = 3
	q.Allowance = 7
	got, _ = q.Cost(100)
	// 2,500,000 + 300*10000 + 7.
	if got != 5_500_007 {
		t.Fatalf("n=3: got %d, want 5500007", got)
	}
}

func TestQuote_Fit(t *testing.T) {
	full, _ := gpt4o.Cost(gpt4o.MaxOutput)
	tests := []struct {
		name     string
		headroom Money
		mode     OnLow
		wantCap  int64
		wantErr  error
	}{
		{"fits", full, Clamp, 16384, nil},
		{"unlimited", MaxMoney, Reject, 16384, nil},
		{"reject when short", full - 1, Reject, 0, ErrExhausted},
		{"clamp when short", full - 1, Clamp, 16383, nil},
		// 3,500,000 leaves 1,000,000 after input: exactly 100 output tokens.
		{"clamp exact", 3_500_000, Clamp, 100, nil},
		{"clamp just under", 3_499_999, Clamp, 99, nil},
		{"one token fits", 2_510_000, Clamp, 1, nil},
		{"not even one token", 2_509_999, Clamp, 0, ErrExhausted},
		{"nothing left", 0, Clamp, 0, ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotCap, amount, err := gpt4o.Fit(tt.headroom, tt.mode)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || gotCap != tt.wantCap {
				t.Fatalf("got cap %d, %v; want %d", gotCap, err, tt.wantCap)
			}
			if amount > tt.headroom {
				t.Fatalf("reserved %d > headroom %d", amount, tt.headroom)
			}
			if want, _ := gpt4o.Cost(gotCap); amount != want {
				t.Fatalf("reserved %d, want the cost of the cap %d", amount, want)
			}
		})
	}
}

func TestQuote_FitRespectsMinOutput(t *testing.T) {
	q := gpt4o
	q.MinOutput = 1025
	// Input 2,500,000 + 1,025 × 10,000 fits exactly.
	if c, _, err := q.Fit(12_750_000, Clamp); err != nil || c != 1025 {
		t.Fatalf("got cap %d, %v; want 1025", c, err)
	}
	if _, _, err := q.Fit(12_749_999, Clamp); !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v, want ErrExhausted below the minimum", err)
	}
}

func TestSpend_Headroom(t *testing.T) {
	s := Spend{Committed: 60, Reserved: 30}
	if got := s.Headroom(Limit{Amount: 100}); got != 10 {
		t.Errorf("got %d, want 10", got)
	}
	if got := s.Headroom(Limit{Amount: 50}); got != 0 {
		t.Errorf("over limit: got %d, want 0", got)
	}
	if got := s.Headroom(Limit{}); got != MaxMoney {
		t.Errorf("unlimited: got %d, want MaxMoney", got)
	}
}
