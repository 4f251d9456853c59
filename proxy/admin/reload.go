package admin

import (
	"time"

	"github.com/hardcap/hardcap/tokens"
)

// SetRotateEvery replaces Options.RotateEvery (a config reload's
// tokens.rotate_every) for the tokens created from now on; 0 is
// tokens.DefaultRotateEvery, a negative value never.
func (h *Handler) SetRotateEvery(d time.Duration) {
	if d == 0 {
		d = tokens.DefaultRotateEvery
	}
	h.rotateEvery.Store(int64(d))
}
