package storage

import (
	"encoding/hex"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// oldRecord is a record as hardcap wrote it before the key ledger's
// fields, and oldRecordHex its stored value then (strings 1 to 6 of the
// dictionary are its token, project, provider, model, route and outcome).
var (
	oldRecord = budget.Record{
		Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), ReservationID: "r0000000001",
		Request: budget.Request{TokenID: "tok_a", Project: "web", Provider: "openai", Model: "gpt-4o", Route: "POST /v1/chat/completions", ClientIP: "192.0.2.7"},
		Status:  200, Outcome: budget.Complete,
		Usage:    budget.Usage{InputTokens: 12, OutputTokens: 34},
		Reserved: 5000, Charged: 1200, LatencyMS: 250,
	}
	oldRecordHex = "01e012904e020406080a0c133139322e302e322e379003180000004400f403"
	// oldReservationHex is sampleReservation as hardcap wrote it before
	// the key ledger's fields.
	oldReservationHex = "010b7230303030303030303273feffffffffffffffff018040aaf4fab6b6e8c8eb31030c676c6f62616c7c746f74616c1970726f6a6563743a7765627c6d6f6e74683a323032362d31311a746f6b656e3a746f6b5f787c6461793a323032362d31312d323605746f6b5f7803776562066f70656e6169066770742d346f142f76312f636861742f636f6d706c6574696f6e73093139322e302e322e31"
)

// oldDict is the dictionary oldRecordHex was written against.
func oldDict() *dict {
	strs := []string{"", "tok_a", "web", "openai", "gpt-4o", "POST /v1/chat/completions", "complete"}
	return &dict{cache: map[uint32]string{}, get: func(id uint32) ([]byte, bool) {
		if int(id) >= len(strs) {
			return nil, false
		}
		return []byte(strs[id]), true
	}}
}

// TestRecordEncoding_OldFormStillReads: a record stored before the user
// agent, old-secret mark and request id decodes, strictly, to what it was
// with those empty; and a record without them is still stored byte for
// byte as then.
func TestRecordEncoding_OldFormStillReads(t *testing.T) {
	v, err := hex.DecodeString(oldRecordHex)
	if err != nil {
		t.Fatal(err)
	}
	key := recordKey(oldRecord)
	got, err := decodeRecord(oldDict(), key, v, true)
	if err != nil || !reflect.DeepEqual(got, oldRecord) {
		t.Fatalf("old form: got %+v, %v; want %+v", got, err, oldRecord)
	}
	withBolt(t, emptyLedger(t), func(tx *bolt.Tx) error {
		nv, err := encodeRecord(tx, nil, oldRecord, &recordIDs{})
		if err != nil {
			return err
		}
		if hex.EncodeToString(nv) != oldRecordHex {
			t.Errorf("a record without the new fields is stored as %x, want the old form %s", nv, oldRecordHex)
		}
		return nil
	})
}

// TestRecordEncoding_NewFieldsRoundTrip: the user agent, the old-secret
// mark and the provider's request id read back as written, in strict and
// lax reads, through the writer's path and the direct one; the user agent
// is interned (a second record naming it adds no string) and OpenAI's hex
// request ids are packed.
func TestRecordEncoding_NewFieldsRoundTrip(t *testing.T) {
	openAIID := "req_" + strings.Repeat("0123456789abcdef", 2)
	tests := []struct {
		name  string
		edit  func(r *budget.Record)
		under int // the value is at most this many bytes, when set
	}{
		{"user agent", func(r *budget.Record) { r.UserAgent = "OpenAI/Python 1.99.9" }, 0},
		{"old secret only", func(r *budget.Record) { r.OldSecret = true }, len(oldRecordHex)/2 + 1},
		{"openai request id packed", func(r *budget.Record) { r.RequestID = openAIID }, len(oldRecordHex)/2 + 2 + 16},
		{"anthropic request id", func(r *budget.Record) { r.RequestID = "req_011CSHoEeqs5C35K2UUqR7Fy" }, 0},
		{"upper-case hex is kept as text", func(r *budget.Record) { r.RequestID = "req_ABCDEF" }, 0},
		{"odd hex is kept as text", func(r *budget.Record) { r.RequestID = "req_abc" }, 0},
		{"prefix alone", func(r *budget.Record) { r.RequestID = "req_" }, 0},
		{"user agent too long to intern", func(r *budget.Record) { r.UserAgent = strings.Repeat("u", maxInterned+1) }, 0},
		{"all of them", func(r *budget.Record) {
			r.UserAgent, r.OldSecret, r.RequestID = "curl/8.5.0", true, openAIID
		}, 0},
	}
	path := emptyLedger(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := oldRecord
			tt.edit(&rec)
			withBolt(t, path, func(tx *bolt.Tx) error {
				v, err := encodeRecord(tx, nil, rec, &recordIDs{})
				if err != nil {
					return err
				}
				if tt.under > 0 && len(v) > tt.under {
					t.Errorf("stored in %d bytes, want at most %d", len(v), tt.under)
				}
				for _, strict := range []bool{true, false} {
					got, err := decodeRecord(newDict(tx), recordKey(rec), v, strict)
					if err != nil || !reflect.DeepEqual(got, rec) {
						t.Errorf("strict %v: got %+v, %v; want %+v", strict, got, err, rec)
					}
				}
				return nil
			})
		})
	}
	// The user agent is a dictionary string: a second record naming it
	// adds none.
	withBolt(t, path, func(tx *bolt.Tx) error {
		before := tx.Bucket(bucketStrings).Stats().KeyN
		rec := oldRecord
		rec.UserAgent = "OpenAI/Python 1.99.9"
		if _, err := encodeRecord(tx, nil, rec, &recordIDs{}); err != nil {
			return err
		}
		if after := tx.Bucket(bucketStrings).Stats().KeyN; after != before {
			t.Errorf("the dictionary went from %d to %d keys for a user agent it holds", before, after)
		}
		return nil
	})
}

// TestRecordEncoding_DamagedExtension: unknown flags and a cut extension
// are refused by Check's strict read; a lax read of unknown flags keeps the
// fields it knows.
func TestRecordEncoding_DamagedExtension(t *testing.T) {
	v, _ := hex.DecodeString(oldRecordHex)
	key := recordKey(oldRecord)
	unknown := append(append([]byte(nil), v...), 0x09) // old secret and a flag from the future
	if _, err := decodeRecord(oldDict(), key, unknown, true); err == nil || !strings.Contains(err.Error(), "flags this version does not know") {
		t.Fatalf("strict read of unknown flags: %v", err)
	}
	if got, err := decodeRecord(oldDict(), key, unknown, false); err != nil || !got.OldSecret {
		t.Fatalf("lax read of unknown flags: %+v, %v; want the old-secret mark read", got, err)
	}
	for _, tag := range []byte{0x40, 0x41} { // a 32-byte id, as text and packed, missing
		cut := append(append([]byte(nil), v...), recordHasRequestID, tag)
		if _, err := decodeRecord(oldDict(), key, cut, false); err == nil || !strings.Contains(err.Error(), "ends early") {
			t.Fatalf("cut request id (tag %#x): %v, want ends early", tag, err)
		}
	}
}

// TestReservationEncoding_Extension: a reservation stored before the user
// agent and old-secret mark still decodes; one without them is stored as
// then; one with them round-trips; unknown flags are refused strictly.
func TestReservationEncoding_Extension(t *testing.T) {
	old, err := hex.DecodeString(oldReservationHex)
	if err != nil {
		t.Fatal(err)
	}
	res := sampleReservation()
	if got, err := decodeReservation(nil, old, true); err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("old form: got %+v, %v; want %+v", got, err, res)
	}
	if v := encodeReservation(res); hex.EncodeToString(v) != oldReservationHex {
		t.Fatalf("a reservation without the new fields is stored as %x, want the old form", v)
	}
	for _, edit := range []func(*budget.Request){
		func(r *budget.Request) { r.UserAgent = "Anthropic/Python 0.70.0" },
		func(r *budget.Request) { r.OldSecret = true },
		func(r *budget.Request) { r.UserAgent, r.OldSecret = strings.Repeat("é", 200), true },
	} {
		res := sampleReservation()
		edit(&res.Request)
		v := encodeReservation(res)
		if len(v) > reservationSize(res) {
			t.Errorf("%d bytes, over reservationSize's %d", len(v), reservationSize(res))
		}
		for _, strict := range []bool{true, false} {
			if got, err := decodeReservation(nil, v, strict); err != nil || !reflect.DeepEqual(got, res) {
				t.Errorf("strict %v: got %+v, %v; want %+v", strict, got, err, res)
			}
		}
	}
	if _, err := decodeReservation(nil, append(old, 0x04), true); err == nil || !strings.Contains(err.Error(), "flags this version does not know") {
		t.Fatalf("unknown flag: %v", err)
	}
}

// TestLedger_RecordsKeepUserAgentOldSecretAndRequestID: through the
// ledger, a settled request's record carries the user agent and old-secret
// mark of its reservation and the request id of its settlement; a
// reservation a crash left open is recovered with its user agent and mark.
func TestLedger_RecordsKeepUserAgentOldSecretAndRequestID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	req := budget.Request{TokenID: tok.ID, Model: "m", UserAgent: "my-agent/1.0", OldSecret: true}
	res, err := db.Reserve(ctx, req, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 40, Status: 200, Outcome: budget.Complete, Ended: time.Now(), RequestID: "req_00ff"}); err != nil {
		t.Fatal(err)
	}
	open, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m", UserAgent: "left/2", OldSecret: true}, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := db.Usage(RecordFilter{})
	if err != nil || len(u.Records) != 1 {
		t.Fatalf("usage: %+v, %v", u, err)
	}
	if r := u.Records[0]; r.UserAgent != "my-agent/1.0" || !r.OldSecret || r.RequestID != "req_00ff" {
		t.Fatalf("record %+v: want user agent my-agent/1.0, old secret, request id req_00ff", r)
	}
	db.Close() // as a crash would, with one reservation open
	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := db.Recovered()
	db.Close()
	if len(rec) != 1 || rec[0].ReservationID != open.ID || rec[0].UserAgent != "left/2" || !rec[0].OldSecret {
		t.Fatalf("recovered %+v, want %s with user agent left/2 and the old-secret mark", rec, open.ID)
	}
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Fatalf("check: %+v, %v", rep, err)
	}
}
