package admin

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// knownErrors holds every exported error value of the domain, storage and
// proxy packages, by package directory and name. TestErrorTable_Complete
// fails when a package declares one this map lacks, so each new error gets
// a decision here and in proxy.ErrorCodes.
var knownErrors = map[string]map[string]error{
	"budget": {
		"ErrInvalidAmount": budget.ErrInvalidAmount, "ErrInvalidFraction": budget.ErrInvalidFraction, "ErrOverflow": budget.ErrOverflow, "ErrExhausted": budget.ErrExhausted,
		"ErrInvalidPeriod": budget.ErrInvalidPeriod, "ErrInvalidConfig": budget.ErrInvalidConfig,
		"ErrNotReserved": budget.ErrNotReserved, "ErrLedgerClosed": budget.ErrLedgerClosed,
		"ErrLedgerDamaged": budget.ErrLedgerDamaged, "ErrClusterUnavailable": budget.ErrClusterUnavailable,
	},
	"tokens": {
		"ErrMalformed": tokens.ErrMalformed, "ErrUnknown": tokens.ErrUnknown, "ErrRevoked": tokens.ErrRevoked, "ErrRotated": tokens.ErrRotated,
		"ErrExpired": tokens.ErrExpired, "ErrKilled": tokens.ErrKilled, "ErrModelNotAllowed": tokens.ErrModelNotAllowed,
		"ErrInvalidName": tokens.ErrInvalidName, "ErrProjectExists": tokens.ErrProjectExists,
		"ErrProjectNotFound": tokens.ErrProjectNotFound, "ErrTokenNotFound": tokens.ErrTokenNotFound,
		"ErrProjectHasTokens": tokens.ErrProjectHasTokens, "ErrInvalidScope": tokens.ErrInvalidScope,
		"ErrInvalidExpiry": tokens.ErrInvalidExpiry, "ErrInvalidGrace": tokens.ErrInvalidGrace, "ErrInvalidRotation": tokens.ErrInvalidRotation,
		"ErrTokenFinal": tokens.ErrTokenFinal, "ErrInvalidText": tokens.ErrInvalidText,
	},
	"storage": {"ErrClosed": storage.ErrClosed, "ErrNotReserved": storage.ErrNotReserved, "ErrDamaged": storage.ErrDamaged},
	"budget/pricing": {
		"ErrUnknownProvider": pricing.ErrUnknownProvider, "ErrModelNotPriced": pricing.ErrModelNotPriced,
		"ErrInvalidUsage": pricing.ErrInvalidUsage, "ErrInvalidRate": pricing.ErrInvalidRate,
		"ErrInvalidData": pricing.ErrInvalidData, "ErrInvalidOverride": pricing.ErrInvalidOverride,
	},
	"proxy": {
		"ErrUnknownRoute": proxy.ErrUnknownRoute, "ErrUnbounded": proxy.ErrUnbounded, "ErrBadRequest": proxy.ErrBadRequest,
		"ErrTooLarge": proxy.ErrTooLarge, "ErrRateLimited": proxy.ErrRateLimited, "ErrNoKey": proxy.ErrNoKey,
		"ErrShuttingDown": proxy.ErrShuttingDown, "ErrStorage": proxy.ErrStorage, "ErrCut": proxy.ErrCut,
		"ErrKeySource": proxy.ErrKeySource,
		// A token's scopes.
		"ErrRouteNotAllowed": proxy.ErrRouteNotAllowed, "ErrIPNotAllowed": proxy.ErrIPNotAllowed,
		"ErrRequestTooCostly": proxy.ErrRequestTooCostly, "ErrTooManyInFlight": proxy.ErrTooManyInFlight,
		"ErrNoProviders": proxy.ErrNoProviders, "ErrProviderNotFound": proxy.ErrProviderNotFound,
	},
}

// serverFaults are the errors allowed a 5xx: failures of the ledger, and
// of the server itself (a provider key it cannot read, a stop), which a
// retry may get past. Every other error is a refusal and must be 4xx.
var serverFaults = map[error]bool{
	budget.ErrNotReserved: true, budget.ErrLedgerClosed: true, budget.ErrLedgerDamaged: true, proxy.ErrStorage: true,
	budget.ErrClusterUnavailable: true,
	proxy.ErrNoKey:               true, proxy.ErrShuttingDown: true,
}

// exportedErrors parses the non-test Go files of a package directory and
// returns the names of its exported package-level Err... variables.
func exportedErrors(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if len(n.Name) > 3 && strings.HasPrefix(n.Name, "Err") && unicode.IsUpper(rune(n.Name[3])) {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

// notServed are exported errors that never reach an HTTP answer: storage
// returns them from Open and Salvage, which run before any server exists
// (serve refuses to start; the db commands print them). ErrBadCursor is
// answered 400 by the usage handler itself, the only route that takes a
// cursor (TestUsage_Pages checks it), because proxy's table cannot name a
// storage error without proxy importing storage. ErrInvalidAck likewise is
// answered 400 by the audit acknowledgement handler itself (audit.go),
// which checks the key with package audit before storage sees it.
// ErrInvalidProviderKey is the key ledger's own check of what proxy.Keys
// passes it (a configured provider's name, a key its source gave, never
// empty); a reload answers a failed ledger write as proxy.ErrStorage.
// ErrAlertNotFound comes only from SetDelivery, which alert delivery calls
// and no route does. proxy.ErrReconfigure comes only from Reconfigure, which
// a SIGHUP's config reload calls and no route does.
var notServed = map[string]map[string]bool{
	"storage": {"ErrLocked": true, "ErrNewerFormat": true, "ErrExists": true, "ErrBadCursor": true, "ErrInvalidAck": true, "ErrInvalidProviderKey": true,
		"ErrAlertNotFound": true},
	"proxy": {"ErrReconfigure": true},
}

func TestErrorTable_Complete(t *testing.T) {
	for dir, known := range knownErrors {
		for _, name := range exportedErrors(t, dir) {
			if _, ok := known[name]; !ok && !notServed[dir][name] {
				t.Errorf("%s.%s is not in knownErrors: add it there and give it a status in proxy.ErrorCodes", dir, name)
			}
		}
		for name, err := range known {
			t.Run(dir+"."+name, func(t *testing.T) {
				c, ok := proxy.Classify(err)
				if !ok {
					t.Fatalf("%v is not in proxy.ErrorCodes: it would be answered 5xx", err)
				}
				if c.Status >= 500 && !serverFaults[err] {
					t.Fatalf("%v is answered %d %s; a refusal must not be a 5xx", err, c.Status, c.Code)
				}
				if c.Status < 400 || c.Code == "" {
					t.Fatalf("%v is answered %d %q", err, c.Status, c.Code)
				}
				// The admin API answers it the same way.
				rec := &statusRecorder{header: http.Header{}}
				(&Handler{opts: Options{Log: zerolog.Nop()}}).writeDomainError(rec, err)
				if rec.status != c.Status {
					t.Fatalf("the admin API answers %v with %d, the table says %d", err, rec.status, c.Status)
				}
			})
		}
	}
}

type statusRecorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *statusRecorder) WriteHeader(s int)           { r.status = s }
