package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/hardcap/hardcap/budget/pricing"
)

const usage = `hardcap puts a hard ceiling on what LLM API keys can spend.

Usage:
  hardcap serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--demo] [--allow-insecure-listen]
  hardcap project create NAME [--budget USD|unlimited] [--period day|week|month|total]
  hardcap project set NAME [--budget USD|unlimited] [--period P]
  hardcap project delete NAME [--revoke-tokens]
  hardcap project list
  hardcap token create --project NAME [--name LABEL] [--budget USD|unlimited] [--period P]
                       [--models a,b] [--expires DURATION] [--rpm N]
  hardcap token set ID [--name LABEL] [--budget USD|unlimited] [--period P] [--models a,b]
                       [--expires DURATION|never] [--rpm N]
  hardcap token list [--project NAME]
  hardcap token revoke ID
  hardcap usage [--project NAME] [--token ID] [--since DURATION] [--limit N] [--cursor C] [--csv]
  hardcap kill [--project NAME | --token ID]
  hardcap resume [--project NAME | --token ID]
  hardcap status
  hardcap reconcile [--provider NAME] [--since 30d]
  hardcap keys [--provider NAME]
  hardcap keys reload [--provider NAME]
  hardcap prices check [--provider ID] [--json]
  hardcap prices update [--accept-drops] [--genai-url URL] [--litellm-url URL]
  hardcap db check|recover          (offline, on the data dir)
  hardcap db backup FILE|-          (through the running server; - is stdout)
  hardcap help [COMMAND]            (every command also takes --help)
  hardcap --version

Every command but serve, prices and db check|recover talks to a running
server (--server URL or host:port, or $HARDCAP_SERVER; default
http://127.0.0.1:8787; --timeout, default 5s) with the admin token from
$HARDCAP_ADMIN_TOKEN or <data_dir>/admin.token, and takes --json to print
the API's JSON. A budget of 0 is zero (every priced request refused);
"unlimited", or no --budget, is no limit. Durations: 90m, 720h, 30d, 2w, 1y
(at most 100 years).
`

// commandGroups are the commands that take a subcommand; `hardcap GROUP
// --help` lists the group's lines of usage.
var commandGroups = map[string]bool{"project": true, "token": true, "prices": true, "db": true}

// commandDoc is what `hardcap help COMMAND` prints besides the flags.
type commandDoc struct {
	synopsis, about, example string
}

// commandDocs is keyed by the flag set's name ("project create").
var commandDocs = map[string]commandDoc{
	"serve": {"serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--demo] [--allow-insecure-listen]",
		"Runs the proxy and the admin API. --demo serves built-in simulated OpenAI and Anthropic providers\n(no key, no network); --allow-insecure-listen allows a listen address other than loopback without TLS.",
		"hardcap serve --demo"},
	"project create": {"project create NAME [--budget USD|unlimited] [--period day|week|month|total]",
		"Creates a project: a budget and a kill switch its tokens share. Names are 1-64 letters, digits, '.', '_' or '-'.",
		"hardcap project create web --budget 20 --period month"},
	"project set": {"project set NAME [--budget USD|unlimited] [--period P]",
		"Changes a project's budget; only the flags given change. A budget below what is already spent is allowed\nand refuses new requests; money already reserved is not taken back.",
		"hardcap project set web --budget 50"},
	"project delete": {"project delete NAME [--revoke-tokens]",
		"Deletes a project. Refused while it has live tokens, unless --revoke-tokens revokes them. Its usage\nrecords stay (hardcap usage --project NAME).",
		"hardcap project delete web --revoke-tokens"},
	"project list": {"project list", "Lists every project with its budget and spend.", "hardcap project list --json"},
	"token create": {"token create --project NAME [--name LABEL] [--budget USD|unlimited] [--period P] [--models a,b] [--expires DURATION] [--rpm N]",
		"Issues a token (hc_...) for a project and prints it once. Names are at most 128 characters.",
		"hardcap token create --project web --name ci --budget 5 --period day --expires 90d"},
	"token set": {"token set ID [--name LABEL] [--budget USD|unlimited] [--period P] [--models a,b] [--expires DURATION|never] [--rpm N]",
		"Changes a token; only the flags given change. --models \"\" allows every priced model, --rpm 0 removes\nthe rate limit, --expires counts from now.",
		"hardcap token set tok_123 --budget 10 --rpm 60"},
	"token list":   {"token list [--project NAME]", "Lists tokens with their state, budget and spend.", "hardcap token list --project web"},
	"token revoke": {"token revoke ID", "Revokes a token at once; its in-flight requests are cut.", "hardcap token revoke tok_123"},
	"usage": {"usage [--project NAME] [--token ID] [--since DURATION] [--limit N] [--cursor C] [--csv]",
		"Prints usage records and totals. On a terminal the newest 100 are shown unless --limit is given;\n--json and --csv print every record unless --limit is given (0 is all), streamed as the server reads\nthem. When --limit leaves older records out, the cursor printed (next_cursor in --json) pages on.",
		"hardcap usage --project web --since 7d"},
	"kill":          {"kill [--project NAME | --token ID]", "Turns the kill switch on (no flag: everything); in-flight requests are cut.", "hardcap kill --project web"},
	"resume":        {"resume [--project NAME | --token ID]", "Turns the kill switch off.", "hardcap resume --project web"},
	"status":        {"status", "Prints the server's version, global budget, kill switch and price data.", "hardcap status --json"},
	"reconcile":     {"reconcile [--provider NAME] [--since 30d]", "Compares each provider's cost report with hardcap's books, per day and model.", "hardcap reconcile --provider openai --since 30d"},
	"prices check":  {"prices check [--provider ID] [--json]", "Lists models whose price sources disagree.", "hardcap prices check --provider openai"},
	"prices update": {"prices update [--accept-drops] [--genai-url URL] [--litellm-url URL]", "Downloads fresh price data into the data dir.", "hardcap prices update"},
	"db check":      {"db check [--data-dir DIR]", "Checks the database file offline (stop the server first).", "hardcap db check"},
	"db recover":    {"db recover [--data-dir DIR]", "Copies every readable record into a new database file, never in place.", "hardcap db recover"},
	"db backup": {"db backup FILE|-",
		"Writes a consistent, checked copy of the database through the running server; - writes it to stdout.\nRefused for a FILE that is the database of the data dir or of any running hardcap.",
		"hardcap db backup hardcap-backup.db"},
}

// helpCommand serves `hardcap help [COMMAND...]` by asking the command
// itself for its --help, so the flags printed are the ones it parses.
func helpCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	return run(ctx, append(append([]string{}, args...), "--help"), stdout, stderr)
}

// versionText is what `hardcap --version` prints: the version, the commit
// it was built from (when the build recorded it) and the dates of the
// embedded price data.
func versionText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hardcap %s\n", version)
	commit, modified, when := "", false, ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			case "vcs.time":
				when = s.Value
			}
		}
		fmt.Fprintf(&b, "go: %s\n", info.GoVersion)
	}
	switch {
	case commit == "":
		b.WriteString("commit: unknown (not built from a git checkout)\n")
	default:
		if modified {
			commit += " (modified)"
		}
		if when != "" {
			commit += " " + when
		}
		fmt.Fprintf(&b, "commit: %s\n", commit)
	}
	fmt.Fprintf(&b, "price data (embedded): genai-prices as of %s, litellm as of %s\n",
		pricing.EmbeddedGenAIAsOf.Format("2006-01-02"), pricing.EmbeddedLiteLLMAsOf.Format("2006-01-02"))
	return b.String()
}
