package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// TestReserve_RefusesASecretARotationEnded: a request authenticated just
// before a rotation committed (its body still arriving) is refused at its
// reservation when the rotation ended its secret, and reserved when the
// secret is still accepted.
func TestReserve_RefusesASecretARotationEnded(t *testing.T) {
	tests := []struct {
		name   string
		grace  time.Duration
		rotate int // rotations between authentication and reservation
		ok     bool
	}{
		{"no rotation", 0, 0, true},
		{"rotated with a grace", time.Hour, 1, true},
		{"rotated with no grace", 0, 1, false},
		{"rotated twice with a grace", time.Hour, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{NoSync: true})
			ctx := context.Background()
			if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
				t.Fatal(err)
			}
			_, secret, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := db.Authenticate(secret)
			if err != nil {
				t.Fatal(err)
			}
			for range tt.rotate {
				if _, _, err := db.RotateToken(ctx, tok.ID, tt.grace); err != nil {
					t.Fatal(err)
				}
			}
			req := budget.Request{TokenID: tok.ID, Project: "p", Provider: "openai", Model: "m", Route: "r", SecretHash: [32]byte(tok.Presented)}
			_, err = db.Reserve(ctx, req, budget.Quote{MaxOutput: 10, OutputRate: 1_000_000})
			if tt.ok && err != nil {
				t.Fatalf("Reserve: %v; want it reserved", err)
			}
			if !tt.ok && !errors.Is(err, tokens.ErrRotated) {
				t.Fatalf("Reserve: %v; want ErrRotated", err)
			}
		})
	}
}
