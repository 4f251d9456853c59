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
  hardcap project create NAME [--budget USD|unlimited] [--period day|week|month|total] [--alert-at 0.5,0.9]
  hardcap project set NAME [--budget USD|unlimited] [--period P] [--alert-at 0.5,0.9|default]
  hardcap project delete NAME [--revoke-tokens]
  hardcap project list
  hardcap token create --project NAME [--name LABEL] [--budget USD|unlimited] [--period P]
                       [--models a,b] [--expires DURATION] [--rpm N]
                       [--owner WHO] [--purpose TEXT] [--rotate-every D|never] [--routes r,s]
                       [--ips CIDR,...] [--max-concurrent N] [--max-request-usd USD]
                       [--alert-at 0.5,0.9]
  hardcap token set ID [--name LABEL] [--budget USD|unlimited] [--period P] [--models a,b]
                       [--expires DURATION|never] [--rpm N] [--alert-at 0.5,0.9|default]
                       [same ledger flags as create]
  hardcap token list [--project NAME]
  hardcap token show ID
  hardcap token rotate ID [--grace 24h]
  hardcap token revoke ID
  hardcap log [--since D] [--token ID | --project NAME]   (admin audit log)
  hardcap usage [--project NAME] [--token ID] [--since DURATION] [--limit N] [--cursor C] [--csv]
  hardcap kill [--project NAME | --token ID]
  hardcap resume [--project NAME | --token ID]
  hardcap status
  hardcap alerts [--limit N] [--type T] [--since D|TIME]   (recent alerts and their delivery)
  hardcap alerts test [--channel NAME]
  hardcap reconcile [--provider NAME] [--since 30d]
  hardcap incident --token ID [--since D|TIME] [--format md|json] [--out FILE]
  hardcap audit [--fail-on low|medium|high|critical] [--fix [--yes]] [--ack KIND:TARGET]
  hardcap keys [--provider NAME]
  hardcap keys reload [--provider NAME]
  hardcap prices check [--provider ID] [--json]
  hardcap prices update [--accept-drops] [--genai-url URL] [--litellm-url URL]
  hardcap db check|recover          (offline, on the data dir)
  hardcap db backup FILE|-          (through the running server; - is stdout)
  hardcap cluster status [--config FILE]   (replicas, slices held, last contact)
  hardcap cluster usage [--project NAME] [--token ID] [--since D]   (every replica's usage)
  hardcap cluster forget REPLICA [--force]   (charge a replica that will not return)
  hardcap scan [PATH...] [--git | --staged] [--revoke [--yes]] [--json]
  hardcap scan --install-hook       (a git pre-commit hook running scan --staged)
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
var commandGroups = map[string]bool{"project": true, "token": true, "prices": true, "db": true, "cluster": true}

// commandDoc is what `hardcap help COMMAND` prints besides the flags.
type commandDoc struct {
	synopsis, about, example string
}

// commandDocs is keyed by the flag set's name ("project create").
var commandDocs = map[string]commandDoc{
	"serve": {"serve [--config FILE] [--listen ADDR] [--data-dir DIR] [--demo] [--allow-insecure-listen]",
		"Runs the proxy and the admin API. --demo serves built-in simulated OpenAI and Anthropic providers\n(no key, no network); --allow-insecure-listen allows a listen address other than loopback without TLS.",
		"hardcap serve --demo"},
	"project create": {"project create NAME [--budget USD|unlimited] [--period day|week|month|total] [--alert-at 0.5,0.9]",
		"Creates a project: a budget and a kill switch its tokens share. Names are 1-64 letters, digits, '.', '_' or '-'.\n--alert-at gives the shares of its budget that fire a budget.threshold alert, once per budget window,\ninstead of the config's alerts.thresholds.",
		"hardcap project create web --budget 20 --period month --alert-at 0.5,0.9"},
	"project set": {"project set NAME [--budget USD|unlimited] [--period P] [--alert-at 0.5,0.9|default]",
		"Changes a project's budget; only the flags given change. A budget below what is already spent is allowed\nand refuses new requests; money already reserved is not taken back. --alert-at default goes back to the\nconfig's alerts.thresholds.",
		"hardcap project set web --budget 50"},
	"project delete": {"project delete NAME [--revoke-tokens]",
		"Deletes a project. Refused while it has live tokens, unless --revoke-tokens revokes them. Its usage\nrecords stay (hardcap usage --project NAME).",
		"hardcap project delete web --revoke-tokens"},
	"project list": {"project list", "Lists every project with its budget and spend.", "hardcap project list --json"},
	"token create": {"token create --project NAME [--name LABEL] [--budget USD|unlimited] [--period P] [--models a,b] [--expires DURATION] [--rpm N]\n    [--owner WHO] [--purpose TEXT] [--rotate-every D|never] [--routes r,s] [--ips CIDR,...] [--max-concurrent N] [--max-request-usd USD]\n    [--alert-at 0.5,0.9]",
		"Issues a token (hc_...) for a project and prints it once. Names and owners are at most 128 characters,\npurposes 256. The secret is due for rotation after --rotate-every (default tokens.rotate_every, 90d).\n--alert-at gives the shares of the token's budget that fire a budget.threshold alert (default the\nconfig's alerts.thresholds).",
		"hardcap token create --project web --name ci --owner ana --purpose \"CI evals\" --budget 5 --period day --routes chat"},
	"token set": {"token set ID [--name LABEL] [--budget USD|unlimited] [--period P] [--models a,b] [--expires DURATION|never] [--rpm N]\n    [--owner WHO] [--purpose TEXT] [--rotate-every D|never] [--routes r,s] [--ips CIDR,...] [--max-concurrent N] [--max-request-usd USD|unlimited]\n    [--alert-at 0.5,0.9|default]",
		"Changes a token; only the flags given change. --models \"\", --routes \"\" and --ips \"\" remove that scope,\n--rpm 0 and --max-concurrent 0 remove the limit, --max-request-usd unlimited removes the per-request\nlimit, --expires counts from now, --alert-at default goes back to the config's alerts.thresholds.",
		"hardcap token set tok_123 --budget 10 --rpm 60"},
	"token list":   {"token list [--project NAME]", "Lists tokens with their owner, purpose, state, budget, spend, last use and what is due\n(rotation due or overdue, expiry near).", "hardcap token list --project web"},
	"token show":   {"token show ID", "Prints a token's whole ledger entry: owner, purpose, who created it and when, last use (time, client\nIP, user agent), request count, rotation dates, scopes, budget and every client address seen\n(first and last use, requests; past 1,000 addresses the rest are counted under \"other\").", "hardcap token show tok_123"},
	"token rotate": {"token rotate ID [--grace 24h]", "Issues a new secret for the token (same id, budget, scopes and history) and prints it once. The old\nsecret keeps working for --grace (requests with it are marked old_secret in usage), then is refused\nwith a message that says it was rotated; --grace 0 refuses it at once.", "hardcap token rotate tok_123 --grace 48h"},
	"log":          {"log [--since D] [--token ID | --project NAME]", "Prints the admin audit log: every create, change, kill, resume, revoke, rotate and delete, with its\ntime, the admin credential that made it (admin:<8 hex digits of its hash>) and its target.", "hardcap log --since 7d --token tok_123"},
	"token revoke": {"token revoke ID", "Revokes a token at once; its in-flight requests are cut.", "hardcap token revoke tok_123"},
	"usage": {"usage [--project NAME] [--token ID] [--since DURATION] [--limit N] [--cursor C] [--csv]",
		"Prints usage records and totals. On a terminal the newest 100 are shown unless --limit is given;\n--json and --csv print every record unless --limit is given (0 is all), streamed as the server reads\nthem. When --limit leaves older records out, the cursor printed (next_cursor in --json) pages on.",
		"hardcap usage --project web --since 7d"},
	"kill":   {"kill [--project NAME | --token ID]", "Turns the kill switch on (no flag: everything); in-flight requests are cut.", "hardcap kill --project web"},
	"resume": {"resume [--project NAME | --token ID]", "Turns the kill switch off.", "hardcap resume --project web"},
	"status": {"status", "Prints the server's version, global budget, kill switch, alert channels and price data.", "hardcap status --json"},
	"alerts": {"alerts [--limit N] [--type T] [--since D|TIME]",
		"Lists the newest alerts (default 100), newest first: time, id, type, what it is about (global, project,\n" +
			"token or provider), what hardcap did (alert or freeze), each channel's delivery (delivered, pending with\n" +
			"its attempts so far, failed; - before the first attempt) and the message, cut to 80 characters; --json\n" +
			"prints each alert whole with its details. Types: budget.threshold, budget.exhausted, anomaly.new_ip,\n" +
			"anomaly.spend_spike, anomaly.new_model, anomaly.key_rejected, anomaly.overshoot,\n" +
			"anomaly.reconcile_drift, token.frozen, test.",
		"hardcap alerts --type anomaly.new_ip --since 7d"},
	"alerts test": {"alerts test [--channel NAME]",
		"Sends a test alert now to every alert channel of the config, or only to --channel, and prints each\nchannel's outcome. Exits 1 when a channel failed.",
		"hardcap alerts test --channel ops"},
	"reconcile":     {"reconcile [--provider NAME] [--since 30d]", "Compares each provider's cost report with hardcap's books, per day and model.", "hardcap reconcile --provider openai --since 30d"},
	"prices check":  {"prices check [--provider ID] [--json]", "Lists models whose price sources disagree.", "hardcap prices check --provider openai"},
	"prices update": {"prices update [--accept-drops] [--genai-url URL] [--litellm-url URL]", "Downloads fresh price data into the data dir.", "hardcap prices update"},
	"db check":      {"db check [--data-dir DIR]", "Checks the database file offline (stop the server first).", "hardcap db check"},
	"db recover":    {"db recover [--data-dir DIR]", "Copies every readable record into a new database file, never in place.", "hardcap db recover"},
	"scan": {"scan [PATH...] [--git | --staged] [--revoke [--yes]] [--install-hook] [--json]",
		"Finds real provider keys (the gitleaks rules: OpenAI, Anthropic and 200 more) and hardcap tokens in the\n" +
			"files under each PATH (default .; .git and binary files skipped, files over 10 MiB reported), or with\n" +
			"--git in every commit of the repository, or with --staged in what the next commit adds. Secrets are\n" +
			"shown redacted. Each hardcap token is looked up on the server by its hash; --revoke revokes the live\n" +
			"ones (asking first unless --yes). Exit 1 on a finding or an unreadable path, 2 on a usage error.",
		"hardcap scan . --git\nhardcap scan --install-hook"},
	"cluster status": {"cluster status [--config FILE] [--json]",
		"Lists the replicas of the cluster the config's cluster: section names, read from PostgreSQL directly\n(it works with every replica down): each one's state, last contact, slices, what they hold beyond their\nfolded spend, and what they folded in.",
		"hardcap cluster status --config /etc/hardcap/hardcap.yaml"},
	"cluster usage": {"cluster usage [--config FILE] [--project NAME] [--token ID] [--since D] [--json]",
		"Sums the usage records every replica shipped to PostgreSQL (each replica writes a record to its own\nledger first and ships it within about a second), per project, token and model.",
		"hardcap cluster usage --config /etc/hardcap/hardcap.yaml --since 24h"},
	"cluster forget": {"cluster forget REPLICA [--config FILE] [--force]",
		"Charges every slice a replica that will not come back holds as spent in full, and bars its replica_id\nfor good, so the money it held can never be spent twice. Refused while its lease runs (it may still be\nspending) unless --force.",
		"hardcap cluster forget r3"},
	"db backup": {"db backup FILE|-",
		"Writes a consistent, checked copy of the database through the running server; - writes it to stdout.\nRefused for a FILE that is the database of the data dir or of any running hardcap.",
		"hardcap db backup hardcap-backup.db"},
	"incident": {"incident --token ID [--since D|TIME] [--format md|json] [--out FILE]",
		"Writes the evidence report on one token after a leak, for a provider's support and a refund claim: the\ntoken, first and last use, requests and spend per hour, each client IP and user agent, models, routes,\nrefusals, the admin actions on it (kill, revoke, rotate: when and by which admin credential) and the\nprovider's request ids. Markdown for people, JSON for machines; never a secret.",
		"hardcap incident --token tok_123 --since 2026-11-30T14:00:00Z --out incident.md"},
	"audit": {"audit [--fail-on low|medium|high|critical] [--fix [--yes]] [--ack KIND:TARGET]",
		"Prints the key ledger's findings, most urgent first, each with the command that fixes it: zombie tokens,\n" +
			"overdue rotations, tokens with no budget, expiry or scope, tokens with no owner, old secrets in grace,\n" +
			"provider keys overdue or refused, key files others can read, keys in clear in the config or data dir,\n" +
			"price data older than 90 days, and a reminder per provider to turn off auto top-up. Exits 1 when a\n" +
			"finding is at or above --fail-on (default high). --fix revokes the zombie tokens after asking (--yes:\n" +
			"without asking); --ack KIND:TARGET dismisses an auto-topup or token-no-owner finding for good.",
		"hardcap audit --fail-on medium\nhardcap audit --ack auto-topup:openai"},
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
