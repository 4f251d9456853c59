// Package testreq is test support: it decides whether a test that needs an
// outside component (a browser, a database) skips or fails when the
// component is missing.
//
// On a machine with only Go the test skips with one line that says what to
// install. CI sets HARDCAP_TEST_REQUIRE so that a missing component fails the
// run instead of passing it with tests quietly skipped.
package testreq

import (
	"os"
	"strings"
	"testing"
)

// Env is the environment variable that lists the required components: "all",
// or a comma-separated list of names such as "chromium,postgres". Empty or
// unset means none is required.
const Env = "HARDCAP_TEST_REQUIRE"

// Required reports whether the component name is required by the
// environment variable Env.
func Required(name string) bool {
	return requiredIn(os.Getenv(Env), name)
}

// requiredIn reports whether list (the value of Env) requires name.
func requiredIn(list, name string) bool {
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "all" || strings.EqualFold(item, name) {
			return true
		}
	}
	return false
}

// Need returns at once when found is true. Otherwise it ends the test: with
// t.Fatal when Env requires the component name, else with t.Skip. how is the
// one line that says what is missing and how to install it; both messages
// carry it.
func Need(t testing.TB, name string, found bool, how string) {
	t.Helper()
	if found {
		return
	}
	if Required(name) {
		t.Fatalf("%s is required (%s=%s) but missing: %s", name, Env, os.Getenv(Env), how)
	}
	t.Skip(how)
}
