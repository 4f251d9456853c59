package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/hardcap/hardcap/budget"
)

// incidentCommand serves `hardcap incident --token ID [--since D] [--format
// md|json] [--out FILE]`: the evidence report on one token, from GET
// /admin/v1/incident. The report is read whole before anything is written,
// so a refusal (an unknown token, a bad --since) writes nothing, and --out
// is written atomically.
func incidentCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("incident")
	prepare := clientFlags(fs, stdout)
	token := fs.String("token", "", "the token id (required; hardcap token list shows them)")
	since := fs.String("since", "", "only the last DURATION (24h, 7d) or since a time (2026-11-30T14:00:00Z); default the whole history")
	format := fs.String("format", "md", "md (Markdown tables, for people) or json (for machines)")
	out := fs.String("out", "", "write the report to FILE (mode 0600) instead of stdout")
	_, c, err := prepare(args, 0)
	if err != nil {
		return err
	}
	if *token == "" {
		return usageError("incident: --token is required (see hardcap help incident)")
	}
	if err := checkTokenID(*token); err != nil {
		return err
	}
	switch {
	case c.json && flagSet(fs, "format") && *format != "json":
		return usageError("incident: --json prints the JSON report; give --format json or leave --format out")
	case c.json:
		*format = "json"
	case *format != "md" && *format != "json":
		return usageError(fmt.Sprintf("incident: --format %q is not md or json", budget.Clip(*format)))
	}
	if *out == "" && *format == "json" {
		// Printed exactly as the API answers, as with every --json.
		c.json = true
	}
	q := url.Values{"token": {*token}, "format": {*format}}
	if *since != "" {
		q.Set("since", *since)
	}
	var buf bytes.Buffer
	var dst io.Writer = &buf
	if *out == "" {
		dst = stdout
	} else {
		c.json = false // an error is reported as text; nothing goes to FILE
	}
	if err := c.call(ctx, "GET", "/admin/v1/incident?"+q.Encode(), nil, dst); err != nil || *out == "" {
		return err
	}
	if err := writeFileAtomic(*out, buf.Bytes()); err != nil {
		return fmt.Errorf("incident: writing the report: %w", err)
	}
	fmt.Fprintf(stdout, "incident report on token %s written to %s (%d bytes)\n", *token, *out, buf.Len())
	return nil
}
