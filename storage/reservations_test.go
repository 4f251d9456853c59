package storage

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

func sampleReservation() budget.Reservation {
	return budget.Reservation{
		ID:        "r000000002s",
		Amount:    budget.MaxMoney,
		OutputCap: 4096,
		Keys:      []string{"global|total", "project:web|month:2026-11", "token:tok_x|day:2026-11-26"},
		Created:   time.Date(2026, 11, 26, 10, 30, 0, 123456789, time.UTC),
		Request: budget.Request{
			TokenID: "tok_x", Project: "web", Provider: "openai", Model: "gpt-4o",
			Route: "/v1/chat/completions", ClientIP: "192.0.2.1",
		},
	}
}

// TestReservationEncoding: the binary form reads back what was written,
// starts with its version tag, and the JSON form of earlier files is still
// read; damaged entries are refused, not half read.
func TestReservationEncoding(t *testing.T) {
	res := sampleReservation()
	v := encodeReservation(res)
	if v[0] != reservationV1 {
		t.Fatalf("first byte %#x, want the tag %#x", v[0], reservationV1)
	}
	for _, strict := range []bool{false, true} {
		got, err := decodeReservation([]byte(res.ID), v, strict)
		if err != nil || !reflect.DeepEqual(got, res) {
			t.Fatalf("strict %v: got %+v, %v; want %+v", strict, got, err, res)
		}
	}
	legacy, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeReservation(nil, legacy, true); err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("JSON form: got %+v, %v; want %+v", got, err, res)
	}
	if len(v) >= len(legacy)/2 {
		t.Fatalf("binary form is %d bytes against JSON's %d; want under half", len(v), len(legacy))
	}

	refused := []struct {
		name   string
		v      []byte
		strict bool
		says   string
	}{
		{"empty", nil, false, "unexpected end of JSON"},
		{"unknown tag", append([]byte{0x02}, v[1:]...), false, "unknown encoding"},
		{"data after it", append(v, 0), true, "data after the reservation"},
		{"key count beyond the entry", []byte{reservationV1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, false, "ends early"},
		{"string longer than the entry", []byte{reservationV1, 0x7f, 'r'}, false, "ends early"},
	}
	for i := 1; i < len(v); i++ {
		refused = append(refused, struct {
			name   string
			v      []byte
			strict bool
			says   string
		}{fmt.Sprintf("cut at %d of %d bytes", i, len(v)), v[:i], false, "ends early"})
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeReservation([]byte("r1"), tt.v, tt.strict)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v, want an error saying %q", err, tt.says)
			}
		})
	}
}

// TestOpen_ChargesReservationsLeftInTheJSONForm: a file written by the
// release before the binary form may hold open reservations in JSON;
// Open's check accepts them and recovery charges them in full.
func TestOpen_ChargesReservationsLeftInTheJSONForm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	res, err := reserve(db, tok, flat(700))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	withBolt(t, path, func(tx *bolt.Tx) error {
		v, err := json.Marshal(res)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketReservations).Put([]byte(res.ID), v)
	})
	if rep, err := Check(path); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("check of a file with a JSON reservation: %+v, %v", rep, err)
	}
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := db.Recovered()
	if len(rec) != 1 || rec[0].ReservationID != res.ID || rec[0].Charged != 700 {
		t.Fatalf("recovered %+v, want %s charged 700 in full", rec, res.ID)
	}
	if st, _ := db.Status(); st.OpenReservations != 0 || st.Global.Committed != 700 || st.Global.Reserved != 0 {
		t.Fatalf("got %+v, want 700 committed and nothing open", st)
	}
}
