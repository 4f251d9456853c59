package admin

import (
	"strings"
	"testing"
)

// TestDecode_OneObjectEachFieldOnce: an admin body that names a field twice
// or carries more after its object is refused and changes nothing.
func TestDecode_OneObjectEachFieldOnce(t *testing.T) {
	e := newAdminEnv(t)
	for _, body := range []string{
		`{"name":"a","name":"b"}`,
		`{"name":"a","NAME":"b"}`,
		`{"name":"c"} {"name":"d"}`,
		`{"name":"e"}x`,
	} {
		code, out := e.do("POST", "/admin/v1/projects", body)
		if code != 400 || !strings.Contains(out, "invalid_request") {
			t.Errorf("POST %s: %d %s; want 400 invalid_request", body, code, out)
		}
	}
	_, out := e.do("GET", "/admin/v1/projects", "")
	for _, name := range []string{`"a"`, `"b"`, `"c"`, `"d"`, `"e"`} {
		if strings.Contains(out, `"name":`+name) || strings.Contains(out, `"name": `+name) {
			t.Errorf("a refused body created project %s: %s", name, out)
		}
	}
}
