package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// Standard Webhooks headers (https://www.standardwebhooks.com/): the id a
// receiver deduplicates on, the time of the attempt, and the signature.
const (
	headerID        = "webhook-id"
	headerTimestamp = "webhook-timestamp"
	headerSignature = "webhook-signature"
)

// sign is the Standard Webhooks signature of body sent as message id at
// ts: "v1," and the base64 HMAC-SHA256 of "id.timestamp.body".
func sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// setStandardHeaders sets the Standard Webhooks headers of a JSON webhook's
// request; the signature only with a key.
func setStandardHeaders(h http.Header, key []byte, id string, at time.Time, body []byte) {
	ts := at.Unix()
	h.Set(headerID, id)
	h.Set(headerTimestamp, strconv.FormatInt(ts, 10))
	if key != nil {
		h.Set(headerSignature, sign(key, id, ts, body))
	}
}
