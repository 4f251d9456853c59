package storage

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/tokens"
)

// TestNotFound_NeverRepeatsASecret: a token's secret passed as an id is
// not found, and the error does not hold it.
func TestNotFound_NeverRepeatsASecret(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	secret, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Token":       func() error { _, err := db.Token(secret); return err },
		"RevokeToken": func() error { _, err := db.RevokeToken(ctx, secret); return err },
		"RotateToken": func() error { _, _, err := db.RotateToken(ctx, secret, 0); return err },
		"SetKill":     func() error { return db.SetKill(ctx, KillTarget{Token: secret}, true) },
	} {
		err := call()
		if !errors.Is(err, tokens.ErrTokenNotFound) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s(secret) = %v; want ErrTokenNotFound without the secret", name, err)
		}
	}
	if _, err := db.Token("tok_nope"); err == nil || !strings.Contains(err.Error(), "tok_nope") {
		t.Errorf("Token(tok_nope) = %v; want the id named", err)
	}
}
