package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// reservationV1 tags the binary form of a reservation. JSON, the form of
// hardcap before it (which a file may still hold while its reservations
// are open: recovery settles all of them at Open), never starts with this
// byte, so both forms are read.
const reservationV1 = 0x01

// Flags of a reservation's extension.
const (
	// reservationOldSecret: budget.Request.OldSecret.
	reservationOldSecret = 1 << iota
	// reservationHasUserAgent: the user agent follows.
	reservationHasUserAgent
	// reservationFlags is every flag this version knows.
	reservationFlags = reservationOldSecret | reservationHasUserAgent
)

// The binary form, after the tag: the id, the amount (varint, nano-USD),
// the output cap (varint), the creation time (varint, Unix nanoseconds,
// UTC), the number of spend keys (uvarint) and each key, then the request's
// token id, project, provider, model, route and client IP. Every string is
// a uvarint length and its bytes. Then, only when the request has one of
// them (so that a reservation without is what it was before them), an
// extension: a uvarint of flags, never 0 (reservationOldSecret,
// reservationHasUserAgent), and the user agent if flagged.
//
// Errors of decoding it.
var (
	errShort    = errors.New("ends early")
	errTrailing = errors.New("data after the reservation")
	errTag      = errors.New("unknown encoding")
	errFlags    = errors.New("extension has flags this version does not know")
)

// encodeReservation is the binary form of res.
func encodeReservation(res budget.Reservation) []byte {
	return appendReservation(make([]byte, 0, reservationSize(res)), res)
}

// reservationSize is the most bytes the binary form of res takes.
func reservationSize(res budget.Reservation) int {
	r := res.Request
	n := 1 + 3*binary.MaxVarintLen64 + binary.MaxVarintLen64*(8+len(res.Keys)) + len(res.ID) +
		len(r.TokenID) + len(r.Project) + len(r.Provider) + len(r.Model) + len(r.Route) + len(r.ClientIP) +
		2*binary.MaxVarintLen64 + len(r.UserAgent)
	for _, k := range res.Keys {
		n += len(k)
	}
	return n
}

// appendReservation appends the binary form of res to b.
func appendReservation(b []byte, res budget.Reservation) []byte {
	r := res.Request
	b = append(b, reservationV1)
	b = appendLenString(b, res.ID)
	b = binary.AppendVarint(b, int64(res.Amount))
	b = binary.AppendVarint(b, res.OutputCap)
	b = binary.AppendVarint(b, res.Created.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(res.Keys)))
	for _, k := range res.Keys {
		b = appendLenString(b, k)
	}
	for _, s := range [...]string{r.TokenID, r.Project, r.Provider, r.Model, r.Route, r.ClientIP} {
		b = appendLenString(b, s)
	}
	var flags uint64
	if r.OldSecret {
		flags |= reservationOldSecret
	}
	if r.UserAgent != "" {
		flags |= reservationHasUserAgent
	}
	if flags != 0 {
		b = binary.AppendUvarint(b, flags)
		if r.UserAgent != "" {
			b = appendLenString(b, r.UserAgent)
		}
	}
	return b
}

func appendLenString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeReservation decodes a reservation entry, binary or JSON; strict
// refuses what Check refuses (see decodeStrict; in the binary form, data
// after the last field). Bad lengths are refused either way.
func decodeReservation(k, v []byte, strict bool) (budget.Reservation, error) {
	var res budget.Reservation
	var err error
	if len(v) > 0 && v[0] == reservationV1 {
		res, err = decodeReservationV1(v[1:], strict)
	} else if len(v) > 0 && v[0] < ' ' && v[0] != '\t' && v[0] != '\n' && v[0] != '\r' {
		err = fmt.Errorf("%w %#x", errTag, v[0])
	} else {
		err = decodeEntry(v, &res, strict)
	}
	if err != nil {
		return budget.Reservation{}, fmt.Errorf("storage: reservation %s: %w", budget.Clip(string(k)), err)
	}
	return res, nil
}

func decodeReservationV1(v []byte, strict bool) (budget.Reservation, error) {
	d := decoder{b: v}
	var res budget.Reservation
	res.ID = d.string()
	res.Amount = budget.Money(d.varint())
	res.OutputCap = d.varint()
	res.Created = time.Unix(0, d.varint()).UTC()
	if n := d.uvarint(); d.err == nil {
		// Each key takes at least its length byte: a count above what is
		// left is damage, not an allocation to make.
		if n > uint64(len(d.b)) {
			return res, errShort
		}
		res.Keys = make([]string, n)
		for i := range res.Keys {
			res.Keys[i] = d.string()
		}
	}
	r := &res.Request
	for _, s := range [...]*string{&r.TokenID, &r.Project, &r.Provider, &r.Model, &r.Route, &r.ClientIP} {
		*s = d.string()
	}
	if d.err == nil && len(d.b) > 0 {
		// The extension, absent when the request has nothing in it.
		flags := d.uvarint()
		switch {
		case !strict || d.err != nil:
		case flags == 0:
			// Never written: bytes after the last field.
			return budget.Reservation{}, errTrailing
		case flags&^reservationFlags != 0:
			return budget.Reservation{}, errFlags
		}
		r.OldSecret = flags&reservationOldSecret != 0
		if flags&reservationHasUserAgent != 0 {
			r.UserAgent = d.string()
		}
	}
	if d.err != nil {
		return budget.Reservation{}, d.err
	}
	if strict && len(d.b) > 0 {
		return budget.Reservation{}, errTrailing
	}
	return res, nil
}

// decoder reads the fields of a binary entry; its first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return x
}

// string reads a length-prefixed string.
func (d *decoder) string() string {
	return d.take(d.uvarint())
}

// take reads the next n bytes as a string.
func (d *decoder) take(n uint64) string {
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
