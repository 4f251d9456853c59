package proxy

import (
	"context"
	"errors"
	"testing"
)

// TestCut_OldSecret: a cut with OldSecret selects only the token's requests
// made with its previous secret; without it, every request of the token.
func TestCut_OldSecret(t *testing.T) {
	tests := []struct {
		name   string
		target CutTarget
		want   []bool // cut: old secret of tok_a, new secret of tok_a, old secret of tok_b
	}{
		{"old secret of one token", CutTarget{TokenID: "tok_a", OldSecret: true}, []bool{true, false, false}},
		{"every request of one token", CutTarget{TokenID: "tok_a"}, []bool{true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(Options{})
			var ctxs []context.Context
			for _, m := range []*meter{
				{tokenID: "tok_a", oldSecret: true},
				{tokenID: "tok_a"},
				{tokenID: "tok_b", oldSecret: true},
			} {
				ctx, cut := context.WithCancelCause(context.Background())
				m.cut = cut
				ctxs = append(ctxs, ctx)
				if !p.inflight.add(m) {
					t.Fatal("the proxy refused a request")
				}
			}
			n := p.Cut(tt.target)
			want := 0
			for i, ctx := range ctxs {
				got := errors.Is(context.Cause(ctx), ErrCut)
				if got != tt.want[i] {
					t.Errorf("request %d cut = %v; want %v", i, got, tt.want[i])
				}
				if tt.want[i] {
					want++
				}
			}
			if n != want {
				t.Errorf("Cut returned %d; want %d", n, want)
			}
		})
	}
}
