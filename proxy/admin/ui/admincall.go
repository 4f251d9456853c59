package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAdminBody bounds an admin answer the dashboard reads into memory (a
// list of every token is the largest).
const maxAdminBody = 32 << 20

// adminWriter is the http.ResponseWriter of an in-process admin request.
// Until a status of 2xx is written it keeps the body in memory (an error
// answer, bounded); after one it writes to to, or keeps it too when to is
// nil.
type adminWriter struct {
	header http.Header
	status int
	to     io.Writer
	buf    bytes.Buffer
	over   bool
}

func (w *adminWriter) Header() http.Header { return w.header }

func (w *adminWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *adminWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.to != nil && w.status < 300 {
		return w.to.Write(p)
	}
	if w.buf.Len()+len(p) > maxAdminBody {
		w.over = true
		return 0, fmt.Errorf("%w: larger than %d bytes", ErrAdminAnswer, maxAdminBody)
	}
	return w.buf.Write(p)
}

// adminClient calls the admin API in process with the admin token, so that
// every page goes through the API's checks, audit log and error table.
type adminClient struct {
	h     http.Handler
	token string
}

// serve runs one admin request, the answer's body going to to (nil: kept
// in w.buf). A handler that aborts its answer (http.ErrAbortHandler, after
// its status was sent) is ErrAdminCut.
func (a adminClient) serve(ctx context.Context, method, path string, body any, to io.Writer) (w *adminWriter, err error) {
	var rd io.Reader = http.NoBody
	var n int64
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd, n = bytes.NewReader(raw), int64(len(raw))
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	w = &adminWriter{header: http.Header{}, to: to}
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			err = ErrAdminCut
		}
	}()
	a.h.ServeHTTP(w, req)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.over {
		return w, fmt.Errorf("%w: %s %s is larger than %d bytes", ErrAdminAnswer, method, strings.SplitN(path, "?", 2)[0], maxAdminBody)
	}
	if w.status >= 300 {
		return w, apiError(w.status, w.buf.Bytes())
	}
	return w, nil
}

// call runs an admin request and decodes its JSON answer into out (nil:
// the answer is dropped).
func (a adminClient) call(ctx context.Context, method, path string, body, out any) error {
	w, err := a.serve(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(w.buf.Bytes(), out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrAdminAnswer, method, strings.SplitN(path, "?", 2)[0], err)
	}
	return nil
}

// apiError reads the admin API's error shape.
func apiError(status int, raw []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
		return &APIError{Status: status, Code: "unknown", Message: http.StatusText(status)}
	}
	return &APIError{Status: status, Code: e.Error.Code, Message: e.Error.Message}
}
