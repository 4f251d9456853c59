package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"
)

// logJSON is the answer of GET /admin/v1/log.
type logJSON struct {
	Entries []struct {
		Time   time.Time `json:"time"`
		Actor  string    `json:"actor"`
		Action string    `json:"action"`
		Kind   string    `json:"kind"`
		Target string    `json:"target"`
		Detail string    `json:"detail"`
	} `json:"entries"`
}

// logCommand serves `hardcap log [--since D] [--token ID | --project NAME]
// [--json]`: the admin audit log, oldest first.
func logCommand(ctx context.Context, fs *flag.FlagSet, prepare func([]string, int) ([]string, *client, error), args []string, stdout io.Writer) error {
	since := fs.String("since", "", "only the last DURATION, e.g. 24h or 30d")
	token := fs.String("token", "", "only the changes of this token id")
	project := fs.String("project", "", "only the changes of this project")
	_, c, err := prepare(args, 0)
	if err != nil {
		return err
	}
	if err := checkScope(*project, *token); err != nil {
		return err
	}
	if *project != "" && *token != "" {
		return usageError("log: name --project or --token, not both")
	}
	q := url.Values{}
	for k, v := range map[string]string{"since": *since, "token": *token, "project": *project} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out logJSON
	if err := c.call(ctx, "GET", "/admin/v1/log?"+q.Encode(), nil, &out); err != nil || c.json {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tDETAIL")
	for _, e := range out.Entries {
		target := e.Kind
		if e.Target != "" {
			target += " " + e.Target
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, target, orDash(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d admin change(s)\n", len(out.Entries))
	return nil
}
