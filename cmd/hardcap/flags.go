package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses flags placed before, between or after positional
// arguments ("project create web --budget 5" and "project create --budget 5
// web" both work) and checks that exactly want positionals remain (want < 0:
// any number). -h or --help anywhere returns a helpRequest for the command.
func parseFlags(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpRequest{fs}
			}
			return nil, usageError(fmt.Sprintf("%s: %v (see hardcap help %s)", fs.Name(), err, fs.Name()))
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if want >= 0 && len(pos) != want {
		return nil, usageError(fmt.Sprintf("%s: want %d argument(s), got %d (see hardcap help %s)", fs.Name(), want, len(pos), fs.Name()))
	}
	return pos, nil
}

// helpRequest is a command line that asked for a command's help: run prints
// it to stdout and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h helpRequest) Error() string { return "help requested for " + h.fs.Name() }

// text is the command's synopsis, every flag with its default, and an
// example.
func (h helpRequest) text() string {
	var b strings.Builder
	doc, ok := commandDocs[h.fs.Name()]
	if ok {
		fmt.Fprintf(&b, "Usage:\n  hardcap %s\n\n%s\n", doc.synopsis, doc.about)
	} else {
		fmt.Fprintf(&b, "Usage:\n  hardcap %s [flags]\n", h.fs.Name())
	}
	n := 0
	h.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nFlags:\n")
		h.fs.SetOutput(&b)
		h.fs.PrintDefaults()
		h.fs.SetOutput(io.Discard)
	}
	if ok && doc.example != "" {
		fmt.Fprintf(&b, "\nExample:\n  %s\n", strings.ReplaceAll(doc.example, "\n", "\n  "))
	}
	return b.String()
}
