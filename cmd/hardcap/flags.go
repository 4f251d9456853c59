package main

import (
	"flag"
	"fmt"
	"io"
)

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses flags placed before, between or after positional
// arguments ("project create web --budget 5" and "project create --budget 5
// web" both work) and checks that exactly want positionals remain.
func parseFlags(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError(fmt.Sprintf("%s: %v", fs.Name(), err))
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		return nil, usageError(fmt.Sprintf("%s: want %d argument(s), got %d", fs.Name(), want, len(pos)))
	}
	return pos, nil
}
