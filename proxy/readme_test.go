package proxy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// routeParams returns, per metered route as the README's table names it,
// the parameters its parse accepts. A metered API with no entry here fails
// the test, so a new route cannot skip the table.
func routeParams(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, eps := range endpoints {
		for _, ep := range eps {
			switch ep.api.(type) {
			case nil:
			case chatAPI:
				out["chat"] = chatParams
			case completionsAPI:
				out["completions"] = completionsParams
			case embeddingsAPI:
				out["embeddings"] = embeddingsParams
			case responsesAPI:
				out["responses"] = responsesParams
			case messagesAPI:
				out["messages"] = messagesParams
			default:
				t.Fatalf("the metered route %s %s has no row in the README's accepted-parameters table", ep.method, ep.path)
			}
		}
	}
	return out
}

// TestREADME_AcceptedParameters checks the README's accepted-parameters
// table against the code's allowlists: every parameter a route accepts is
// listed for it, with a reason, and the table lists nothing the code
// refuses.
func TestREADME_AcceptedParameters(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(raw), "<!-- accepted-parameters:")
	if !ok {
		t.Fatal("the README has no accepted-parameters table")
	}
	names := regexp.MustCompile("`([a-z_0-9]+)`")
	listed := map[string]map[string]bool{}
	for i, line := range strings.Split(table, "\n") {
		if i == 0 {
			continue // the marker's own line
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 || strings.HasPrefix(cells[0], "---") || strings.TrimSpace(cells[0]) == "route" {
			continue
		}
		route := strings.TrimSpace(cells[0])
		if strings.TrimSpace(cells[2]) == "" {
			t.Errorf("%s: a row gives no reason: %s", route, line)
		}
		if listed[route] == nil {
			listed[route] = map[string]bool{}
		}
		for _, m := range names.FindAllStringSubmatch(cells[1], -1) {
			listed[route][m[1]] = true
		}
	}
	code := routeParams(t)
	for route, params := range code {
		for p := range params {
			if !listed[route][p] {
				t.Errorf("%s accepts %q, which the README's table does not list", route, p)
			}
		}
	}
	for route, params := range listed {
		if code[route] == nil {
			t.Errorf("the README's table lists a route %q the code does not meter", route)
			continue
		}
		for p := range params {
			if !code[route][p] {
				t.Errorf("the README's table lists %q for %s, which the code refuses", p, route)
			}
		}
	}
	if t.Failed() {
		var routes []string
		for r := range code {
			routes = append(routes, r)
		}
		slices.Sort(routes)
		t.Log(fmt.Sprint("routes: ", routes))
	}
}
