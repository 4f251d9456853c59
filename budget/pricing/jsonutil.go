package pricing

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// unmarshalNumbers decodes JSON with every number kept as json.Number text,
// so that no price passes through float64.
func unmarshalNumbers(data []byte, v any) error {
	return decode(data, v, false)
}

// strictUnmarshal is unmarshalNumbers that also rejects unknown object keys,
// for the parts of a format that a schema closes.
func strictUnmarshal(data []byte, v any) error {
	return decode(data, v, true)
}

func decode(data []byte, v any, strict bool) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if strict {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// isNull reports whether raw is absent or the JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// numberText returns the decimal text of a JSON number. Strings, even ones
// holding a number, are refused: a price file states prices as numbers.
func numberText(raw json.RawMessage) (string, bool) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] == '"' {
		return "", false
	}
	var n json.Number
	if err := unmarshalNumbers(t, &n); err != nil {
		return "", false
	}
	return n.String(), true
}
