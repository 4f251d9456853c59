package storage

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// Usage records are stored compactly (format 2): the key is the end time in
// nanoseconds (8 bytes, big-endian) and the reservation id, so both are
// left out of the value; the value is
//
//	recordV1 tag (1 byte)
//	charged, reserved        zigzag varints, nano-USD (charged first, so a
//	                         sum reads two bytes past the tag: recordCharged)
//	token, project, provider, model, route, outcome
//	                         strings (see encodeRecord)
//	client_ip                string, never interned (see encodeRecord)
//	status, input, cache_read, cache_write, cache_write_1h, output,
//	reasoning, latency_ms    zigzag varints
//	extension                only when a field in it is set (see below)
//
// The extension carries what records gained with the key ledger, and is
// absent from records without it (and from every record written before
// it), so those stay byte for byte what they were:
//
//	flags                    uvarint, never 0: recordOldSecret,
//	                         recordHasUserAgent, recordHasRequestID
//	user_agent               string, interned as the model is (clients
//	                         send a handful of distinct ones), if flagged
//	request_id               the provider's id, if flagged: uvarint
//	                         len<<1 and the bytes, or len<<1|1 and, for
//	                         an id of "req_" and lower-case hex digits
//	                         (OpenAI's), the digits' len bytes
//
// At about 40 bytes a value against about 400 of JSON, a million records
// fit in a file a few times smaller, and a walk touches as many fewer pages.
// Files of format 1 hold JSON records, which migrateRecords rewrites.
const recordV1 = 0x01 // JSON never starts with it: JSON starts with '{' or white space

// Flags of a record's extension.
const (
	// recordOldSecret marks a request made with its token's previous
	// secret, in a rotation's grace (budget.Request.OldSecret).
	recordOldSecret = 1 << iota
	// recordHasUserAgent: the user agent follows.
	recordHasUserAgent
	// recordHasRequestID: the provider's request id follows.
	recordHasRequestID
	// recordFlags is every flag this version knows; a strict read refuses
	// others.
	recordFlags = recordOldSecret | recordHasUserAgent | recordHasRequestID
)

// hexIDPrefix leads the request ids stored as packed hex digits.
const hexIDPrefix = "req_"

// Buckets of the record store (format 2). The indexes and totals are
// written by putRecord in the same transaction as the record, so they are
// never behind it.
var (
	// bucketStrings interns the strings records repeat: "i" + id (4 bytes,
	// big-endian) -> string, and "s" + string -> id.
	bucketStrings = []byte("strings")
	// bucketByToken and bucketByProject index records: string id of the
	// token or project (4 bytes) + record key -> charged (uvarint), so a
	// token's records in a time range are one cursor range and their charges
	// sum without reading a record.
	bucketByToken   = []byte("records_by_token")
	bucketByProject = []byte("records_by_project")
	// bucketUsageHours holds per-hour totals: scope kind ('a' all, 'p'
	// project) + string id (4 bytes) + hour since the epoch (4 bytes) ->
	// records (8 bytes) and charged nano-USD (8 bytes). Tokens have none: a
	// token's charges are summed from its index entries, since a total per
	// token and hour costs as much as the index entry when, as is common,
	// a token has few records in an hour (62 bytes a record at a million
	// records over 250,000 tokens).
	bucketUsageHours = []byte("usage_hours")
	recordBuckets    = [][]byte{bucketStrings, bucketByToken, bucketByProject, bucketUsageHours}
)

// maxInterned is the longest string interned; a longer one (a model name a
// client made up, say) is written inline, so that the dictionary's keys stay
// below bbolt's key limit and a hostile name costs only its own record.
const maxInterned = 512

// Hour totals' scope kinds.
const (
	scopeAll     = 'a'
	scopeToken   = 't' // no hour totals: see bucketUsageHours
	scopeProject = 'p'
)

// Fill percents: records and hour totals are keyed by time and so written
// at the end; the indexes are appended to per token or project, in the
// middle of the bucket, and keep a little room.
const (
	appendFill = 1.0
	indexFill  = 0.9
)

// putRecord writes a usage record, its index entries and its hour totals,
// interning its strings (new ones in this same transaction), straight to
// tx: for what runs outside the writer. The writer uses writeRecord with
// its state.
func putRecord(tx *bolt.Tx, rec budget.Record) error {
	return writeRecord(tx, nil, rec)
}

// writeRecord is putRecord. With the writer's state st, known strings come
// from its dictionary cache, the hour totals are added in memory for its
// flush, and keys are built in its scratch buffer; with st nil everything
// goes to tx at once.
func writeRecord(tx *bolt.Tx, st *state, rec budget.Record) error {
	var ids recordIDs
	var v, key []byte
	var err error
	if st != nil {
		// Encoded in scratch, kept in the batch's value memory.
		if st.recBuf, err = appendRecord(st.recBuf[:0], tx, st, rec, &ids); err != nil {
			return fatal(err)
		}
		v = st.value(len(st.recBuf))
		copy(v, st.recBuf)
		key = appendRecordKey(st.keyBuf[:0], rec)
		st.keyBuf = key
	} else {
		if v, err = encodeRecord(tx, nil, rec, &ids); err != nil {
			return fatal(err)
		}
		key = recordKey(rec)
	}
	b := tx.Bucket(bucketRecords)
	b.FillPercent = appendFill
	if err := b.Put(key, v); err != nil {
		return fatal(err)
	}
	if err := outboxPut(tx, key); err != nil {
		return fatal(err)
	}
	return fatal(indexRecord(tx, st, key, rec, ids))
}

// recordIDs are the string ids encodeRecord gave a record's token and
// project; has is false for an empty or an inline string, which has no
// index entries.
type recordIDs struct {
	token, project       uint32
	hasToken, hasProject bool
}

// indexRecord writes the index entries and hour totals of the record at
// key (with st, the hour totals go to its flush; see writeRecord).
func indexRecord(tx *bolt.Tx, st *state, key []byte, rec budget.Record, ids recordIDs) error {
	charged := max(rec.Charged, 0)
	// One value for both entries: bbolt keeps it until the commit, and
	// neither changes it. Index keys are a string id and the record key;
	// bbolt copies keys, so one buffer serves both.
	var val, ik []byte
	if st != nil {
		val = st.value(binary.MaxVarintLen64)[:0]
		ik = st.indexKey(len(key))
	} else {
		val = make([]byte, 0, binary.MaxVarintLen64)
		ik = make([]byte, 4, 4+len(key))
	}
	val = binary.AppendUvarint(val, uint64(charged))
	ik = append(ik[:4], key...)
	for _, ix := range [...]struct {
		ok     bool
		bucket []byte
		id     uint32
	}{{ids.hasToken, bucketByToken, ids.token}, {ids.hasProject, bucketByProject, ids.project}} {
		if !ix.ok {
			continue
		}
		b := tx.Bucket(ix.bucket)
		b.FillPercent = indexFill
		binary.BigEndian.PutUint32(ik[:4], ix.id)
		if err := b.Put(ik, val); err != nil {
			return err
		}
	}
	h := hourOf(rec.Time.UnixNano())
	if st != nil {
		st.addHour(hourKey(scopeAll, 0, h), charged)
		if ids.hasProject {
			st.addHour(hourKey(scopeProject, ids.project, h), charged)
		}
		return nil
	}
	hb := tx.Bucket(bucketUsageHours)
	hb.FillPercent = appendFill
	add := func(kind byte, id uint32) error {
		k := hourKey(kind, id, h)
		n, sum := hourTotal(hb.Get(k[:]))
		v := make([]byte, 16)
		binary.BigEndian.PutUint64(v[:8], n+1)
		binary.BigEndian.PutUint64(v[8:], uint64(sum+charged))
		return hb.Put(k[:], v)
	}
	if err := add(scopeAll, 0); err != nil {
		return err
	}
	if ids.hasProject {
		if err := add(scopeProject, ids.project); err != nil {
			return err
		}
	}
	return nil
}

// idPrefix is a string id as index keys begin with it.
func idPrefix(id uint32) []byte {
	return binary.BigEndian.AppendUint32(make([]byte, 0, 4+8+11), id)
}

// hourOf is the hour since the epoch of a time in ns, clamped to 32 bits.
func hourOf(ns int64) uint32 {
	h := ns / int64(time.Hour)
	return uint32(min(max(h, 0), 1<<32-1))
}

func hourKey(kind byte, id, hour uint32) hourKeyT {
	var k hourKeyT
	k[0] = kind
	binary.BigEndian.PutUint32(k[1:5], id)
	binary.BigEndian.PutUint32(k[5:], hour)
	return k
}

// hourTotal decodes an hour total; a missing one is zero.
func hourTotal(v []byte) (n uint64, charged budget.Money) {
	if len(v) != 16 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(v[:8]), budget.Money(binary.BigEndian.Uint64(v[8:]))
}

// encodeRecord is rec's stored value; the ids of its token and project
// are set in ids. st, if not nil, is the writer's (see writeRecord).
func encodeRecord(tx *bolt.Tx, st *state, rec budget.Record, ids *recordIDs) ([]byte, error) {
	return appendRecord(make([]byte, 0, 64), tx, st, rec, ids)
}

// appendRecord appends rec's stored value to v (see encodeRecord).
func appendRecord(v []byte, tx *bolt.Tx, st *state, rec budget.Record, ids *recordIDs) ([]byte, error) {
	v = append(v, recordV1)
	v = binary.AppendVarint(v, int64(rec.Charged))
	v = binary.AppendVarint(v, int64(rec.Reserved))
	for i, s := range [...]string{rec.TokenID, rec.Project, rec.Provider, rec.Model, rec.Route, string(rec.Outcome)} {
		if len(s) > maxInterned {
			v = appendInline(v, s)
			continue
		}
		id, err := internWith(tx, st, s)
		if err != nil {
			return nil, err
		}
		switch {
		case s == "":
		case i == 0:
			ids.token, ids.hasToken = id, true
		case i == 1:
			ids.project, ids.hasProject = id, true
		}
		// Interned: uvarint(id<<1) (the empty string is id 0 and never
		// stored); inline: uvarint(len<<1|1) and the bytes.
		v = binary.AppendUvarint(v, uint64(id)<<1)
	}
	v = appendInline(v, rec.ClientIP)
	u := rec.Usage
	for _, n := range [...]int64{int64(rec.Status), u.InputTokens, u.CacheReadTokens, u.CacheWriteTokens, u.CacheWrite1hTokens, u.OutputTokens, u.ReasoningTokens, rec.LatencyMS} {
		v = binary.AppendVarint(v, n)
	}
	return appendExtension(v, tx, st, rec)
}

// appendExtension appends the record's extension, when it has anything to
// carry (see the format above).
func appendExtension(v []byte, tx *bolt.Tx, st *state, rec budget.Record) ([]byte, error) {
	var flags uint64
	if rec.OldSecret {
		flags |= recordOldSecret
	}
	if rec.UserAgent != "" {
		flags |= recordHasUserAgent
	}
	if rec.RequestID != "" {
		flags |= recordHasRequestID
	}
	if flags == 0 {
		return v, nil
	}
	v = binary.AppendUvarint(v, flags)
	if ua := rec.UserAgent; ua != "" {
		if len(ua) > maxInterned {
			v = appendInline(v, ua)
		} else {
			id, err := internWith(tx, st, ua)
			if err != nil {
				return nil, err
			}
			v = binary.AppendUvarint(v, uint64(id)<<1)
		}
	}
	if id := rec.RequestID; id != "" {
		if digits, ok := strings.CutPrefix(id, hexIDPrefix); ok && isLowerHex(digits) {
			v = binary.AppendUvarint(v, uint64(len(digits)/2)<<1|1)
			for i := 0; i < len(digits); i += 2 {
				v = append(v, hexDigit(digits[i])<<4|hexDigit(digits[i+1]))
			}
		} else {
			v = binary.AppendUvarint(v, uint64(len(id))<<1)
			v = append(v, id...)
		}
	}
	return v, nil
}

// hexDigit is the value of a lower-case hex digit.
func hexDigit(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// isLowerHex reports whether s is a non-empty, even number of lower-case
// hex digits: what packs into bytes and reads back as the same text.
func isLowerHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func appendInline(v []byte, s string) []byte {
	v = binary.AppendUvarint(v, uint64(len(s))<<1|1)
	return append(v, s...)
}

// internWith is intern, through the writer's dictionary cache when st is
// not nil: a string it holds costs no read of the file.
func internWith(tx *bolt.Tx, st *state, s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	if st == nil {
		return intern(tx, s)
	}
	if id, ok := st.strs[s]; ok {
		return id, nil
	}
	id, err := intern(tx, s)
	if err != nil {
		return 0, err
	}
	st.addString(s, id)
	return id, nil
}

// intern returns s's id, adding it to the dictionary when it is new.
func intern(tx *bolt.Tx, s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	b := tx.Bucket(bucketStrings)
	if v := b.Get(append([]byte{'s'}, s...)); len(v) == 4 {
		return binary.BigEndian.Uint32(v), nil
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	if seq >= 1<<32 {
		return 0, errors.New("storage: the string dictionary is full")
	}
	id := binary.BigEndian.AppendUint32(nil, uint32(seq))
	if err := b.Put(append([]byte{'i'}, id...), []byte(s)); err != nil {
		return 0, err
	}
	if err := b.Put(append([]byte{'s'}, s...), id); err != nil {
		return 0, err
	}
	return uint32(seq), nil
}

// lookupID is s's id without adding it; ok is false for a string no record
// interned.
func lookupID(tx *bolt.Tx, s string) (uint32, bool) {
	if v := tx.Bucket(bucketStrings).Get(append([]byte{'s'}, s...)); len(v) == 4 {
		return binary.BigEndian.Uint32(v), true
	}
	return 0, false
}

// dict resolves string ids for the records of one transaction, caching
// what it read: a page of records names few distinct strings.
type dict struct {
	get   func(id uint32) ([]byte, bool)
	cache map[uint32]string
}

// newDict reads the dictionary of tx.
func newDict(tx *bolt.Tx) *dict {
	b := tx.Bucket(bucketStrings)
	return &dict{cache: map[uint32]string{}, get: func(id uint32) ([]byte, bool) {
		if b == nil {
			return nil, false
		}
		v := b.Get(binary.BigEndian.AppendUint32([]byte{'i'}, id))
		return v, v != nil
	}}
}

func (d *dict) str(id uint32) (string, bool) {
	if id == 0 {
		return "", true
	}
	if s, ok := d.cache[id]; ok {
		return s, true
	}
	v, ok := d.get(id)
	if !ok {
		return "", false
	}
	s := string(v)
	d.cache[id] = s
	return s, true
}

// Errors of the binary record form, wrapped in decodeRecord's error.
var (
	errRecordShort    = errors.New("record ends early")
	errRecordTrailing = errors.New("data after the record")
	errRecordString   = errors.New("record names a string the dictionary lacks")
	errRecordKey      = errors.New("record key is not an end time and an id")
	errRecordFlags    = errors.New("record's extension has flags this version does not know")
	errRollup         = errors.New("a rollup entry does not decode or names a string the dictionary lacks")
)

// decodeRecord decodes a usage record entry, in either form: the binary one
// (strings resolved through d) or format 1's JSON. strict refuses what
// Check refuses: for JSON see decodeStrict; for the binary form, trailing
// bytes and ids the dictionary lacks (which a lax read turns into empty
// strings rather than fail a query on one damaged entry).
func decodeRecord(d *dict, k, v []byte, strict bool) (budget.Record, error) {
	if len(v) == 0 || v[0] != recordV1 {
		var r budget.Record
		if err := decodeEntry(v, &r, strict); err != nil {
			return budget.Record{}, fmt.Errorf("storage: record %x: %w", k, err)
		}
		return r, nil
	}
	r, err := decodeBinary(d, k, v, strict)
	if err != nil {
		return budget.Record{}, fmt.Errorf("storage: record %x: %w", k, err)
	}
	return r, nil
}

func decodeBinary(d *dict, k, v []byte, strict bool) (budget.Record, error) {
	if len(k) < 9 {
		return budget.Record{}, errRecordKey
	}
	r := budget.Record{
		Time:          time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC(),
		ReservationID: string(k[8:]),
	}
	b := decoder{b: v[1:]}
	missing := false
	num := b.varint
	// A string is a tag: odd, an inline string of tag>>1 bytes; even, the
	// dictionary's string tag>>1.
	str := func(inlineOnly bool) string {
		tag := b.uvarint()
		switch {
		case b.err != nil:
			return ""
		case tag&1 == 1:
			return b.take(tag >> 1)
		case inlineOnly || tag>>1 >= 1<<32:
			b.err = errShort
			return ""
		}
		s, ok := d.str(uint32(tag >> 1))
		missing = missing || !ok
		return s
	}
	r.Charged = budget.Money(num())
	r.Reserved = budget.Money(num())
	r.TokenID, r.Project, r.Provider, r.Model, r.Route = str(false), str(false), str(false), str(false), str(false)
	r.Outcome = budget.Outcome(str(false))
	r.ClientIP = str(true)
	r.Status = int(num())
	u := &r.Usage
	u.InputTokens, u.CacheReadTokens, u.CacheWriteTokens, u.CacheWrite1hTokens = num(), num(), num(), num()
	u.OutputTokens, u.ReasoningTokens = num(), num()
	r.LatencyMS = num()
	if b.err == nil && len(b.b) > 0 {
		// The extension (absent from records that have nothing in it).
		flags := b.uvarint()
		switch {
		case !strict || b.err != nil:
		case flags == 0:
			// Never written: bytes after the last field.
			return budget.Record{}, errRecordTrailing
		case flags&^recordFlags != 0:
			return budget.Record{}, errRecordFlags
		}
		r.OldSecret = flags&recordOldSecret != 0
		if flags&recordHasUserAgent != 0 {
			r.UserAgent = str(false)
		}
		if flags&recordHasRequestID != 0 {
			tag := b.uvarint()
			if n := tag >> 1; tag&1 == 0 || b.err != nil {
				r.RequestID = b.take(n)
			} else if n > uint64(len(b.b)) {
				b.err = errShort
			} else {
				id := make([]byte, len(hexIDPrefix)+2*int(n))
				hex.Encode(id[copy(id, hexIDPrefix):], b.b[:n])
				r.RequestID, b.b = string(id), b.b[n:]
			}
		}
	}
	switch {
	case b.err != nil:
		return budget.Record{}, errRecordShort
	case strict && missing:
		return budget.Record{}, errRecordString
	case strict && len(b.b) > 0:
		return budget.Record{}, errRecordTrailing
	}
	return r, nil
}

// recordCharged reads the charge of a stored record without decoding the
// rest; ok is false for a value that is not in the binary form.
func recordCharged(v []byte) (budget.Money, bool) {
	if len(v) < 2 || v[0] != recordV1 {
		return 0, false
	}
	n, w := binary.Varint(v[1:])
	if w <= 0 {
		return 0, false
	}
	return budget.Money(n), true
}
