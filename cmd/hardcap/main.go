// Command hardcap is a local reverse proxy that puts a hard ceiling on what
// LLM API keys can spend. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "time/tzdata" // budget.timezone works on machines without a zoneinfo database
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a graceful stop; a second exits at once.
		// Whatever that cuts short is charged in full by the next start's
		// recovery.
		<-signals
		cancel()
		<-signals
		fmt.Fprintln(os.Stderr, "hardcap: second signal, exiting now; unsettled requests will be charged in full at the next start")
		os.Exit(130)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

// run executes one command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if len(args) == 2 && (args[1] == "-h" || args[1] == "--help") && commandGroups[args[0]] {
		fmt.Fprint(stdout, groupHelp(args[0]))
		return 0
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(ctx, args[1:], stderr)
	case "project", "token", "usage", "kill", "resume", "status", "log":
		err = clientCommand(ctx, args, stdout)
	case "prices":
		err = pricesCommand(ctx, args[1:], stdout)
	case "reconcile":
		err = reconcileCommand(ctx, args[1:], stdout)
	case "incident":
		err = incidentCommand(ctx, args[1:], stdout)
	case "audit":
		err = auditCommand(ctx, args[1:], stdout)
	case "db":
		err = dbCommand(ctx, args[1:], stdout)
	case "scan": // hardcap scan (scan.go)
		err = scanCommand(ctx, args[1:], stdout, stderr)
	case "keys":
		err = keysCommand(ctx, args[1:], stdout)
	case "alerts":
		err = alertsCommand(ctx, args[1:], stdout)
	case "cluster":
		err = clusterCommand(ctx, args[1:], stdout)
	case "version", "--version", "-version":
		fmt.Fprint(stdout, versionText())
	case "-h", "--help":
		fmt.Fprint(stdout, usage)
	case "help":
		return helpCommand(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "hardcap: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var help helpRequest
	if errors.As(err, &help) {
		fmt.Fprint(stdout, help.text())
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hardcap:", err)
		if _, ok := err.(usageError); ok {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a mistake in the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("serve")
	config := fs.String("config", "", "config file (default $HARDCAP_CONFIG)")
	listen := fs.String("listen", "", "listen address (default 127.0.0.1:8787)")
	data := fs.String("data-dir", "", "data directory (default $HARDCAP_DATA_DIR or ~/.local/share/hardcap)")
	demoMode := fs.Bool("demo", false, "serve built-in simulated OpenAI and Anthropic providers (no key, no network)")
	insecure := fs.Bool("allow-insecure-listen", false, "allow a listen address other than loopback without TLS")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	// The flags win over the file, at the start and at each reload.
	flags := func(cfg *Config) {
		if *listen != "" {
			cfg.Listen = *listen
		}
		if *insecure {
			cfg.AllowInsecureListen = true
		}
	}
	flags(&cfg)
	dir, err := dataDir(*data, cfg.DataDir)
	if err != nil {
		return err
	}
	// SIGHUP reloads the config and re-reads the provider key sources
	// (Main.Hangups) instead of ending the process; subscribed before Open, so one that comes while
	// the server starts waits for it.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	m := &Main{Config: cfg, DataDir: dir, Demo: *demoMode, LogOutput: stderr, Hangups: hups}
	m.live.flags = flags
	// hardcap audit searches the config file for keys in clear.
	m.ConfigPath = *config
	if m.ConfigPath == "" {
		m.ConfigPath = os.Getenv("HARDCAP_CONFIG")
	}
	defer m.closeLog()
	if err := m.Open(); err != nil {
		return err
	}
	return m.Run(ctx)
}
