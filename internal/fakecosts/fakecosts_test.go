package fakecosts

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	openAIKey    = "sk-admin-FAKEopenaiADMINkey0123456789"
	anthropicKey = "sk-ant-admin01-FAKEanthropicADMINkey0123456789"
)

var day0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func newFake(t *testing.T) *Server {
	t.Helper()
	s := New(t, Options{OpenAIKey: openAIKey, AnthropicKey: anthropicKey})
	s.AddOpenAI(
		OpenAICost{Day: day0.Add(3 * time.Hour), LineItem: "gpt-4o-2024-08-06, input", USD: "0.06"},
		OpenAICost{Day: day0.Add(2*24*time.Hour + time.Hour), LineItem: "web search tool calls", USD: "1.5e-2", ProjectID: "proj_1"},
	)
	s.AddAnthropic(
		AnthropicCost{Day: day0, Model: "claude-sonnet-4-5", TokenType: "output_tokens", Cents: "123.45"},
		AnthropicCost{Day: day0.Add(24 * time.Hour), CostType: "web_search", Cents: "1"},
	)
	return s
}

// get sends a GET with the given headers and decodes the JSON answer.
func get(t *testing.T, u string, header map[string]string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return resp.StatusCode, v, string(b)
}

func openAIQuery(start, end time.Time, page string) string {
	q := url.Values{"start_time": {strconv.FormatInt(start.Unix(), 10)}, "end_time": {strconv.FormatInt(end.Unix(), 10)},
		"bucket_width": {"1d"}, "group_by": {"line_item"}, "limit": {"180"}}
	if page != "" {
		q.Set("page", page)
	}
	return "?" + q.Encode()
}

func anthropicQuery(start, end time.Time, page string) string {
	q := url.Values{"starting_at": {start.Format(time.RFC3339)}, "ending_at": {end.Format(time.RFC3339)},
		"bucket_width": {"1d"}, "group_by[]": {"description"}, "limit": {"31"}}
	if page != "" {
		q.Set("page", page)
	}
	return "?" + q.Encode()
}

func TestOpenAI_PagesAndWindow(t *testing.T) {
	s := newFake(t)
	auth := map[string]string{"Authorization": "Bearer " + openAIKey}
	end := day0.Add(3 * 24 * time.Hour)
	var buckets []map[string]any
	page := ""
	for n := 0; ; n++ {
		status, v, body := get(t, s.OpenAIBaseURL()+"/organization/costs"+openAIQuery(day0, end, page), auth)
		if status != 200 {
			t.Fatalf("page %d: got %d %s", n, status, body)
		}
		data := v["data"].([]any)
		if len(data) > 2 {
			t.Fatalf("page %d holds %d buckets, want at most 2", n, len(data))
		}
		for _, b := range data {
			buckets = append(buckets, b.(map[string]any))
		}
		if v["has_more"] != true {
			if v["next_page"] != nil {
				t.Fatalf("last page's next_page is %v, want null", v["next_page"])
			}
			break
		}
		page = v["next_page"].(string)
	}
	if len(buckets) != 3 {
		t.Fatalf("got %d buckets, want 3 (one per day of the window)", len(buckets))
	}
	for i, b := range buckets {
		if got, want := int64(b["start_time"].(float64)), day0.Add(time.Duration(i)*24*time.Hour).Unix(); got != want {
			t.Errorf("bucket %d starts at %d, want %d", i, got, want)
		}
	}
	first := buckets[0]["results"].([]any)[0].(map[string]any)
	if first["line_item"] != "gpt-4o-2024-08-06, input" || first["object"] != "organization.costs.result" || first["project_id"] != nil {
		t.Fatalf("first result %v", first)
	}
	if amt := first["amount"].(map[string]any); amt["value"] != 0.06 || amt["currency"] != "usd" {
		t.Fatalf("first amount %v", amt)
	}
	if r := buckets[1]["results"].([]any); len(r) != 0 {
		t.Fatalf("empty day has results %v", r)
	}
	// The amount goes out exactly as given.
	_, _, body := get(t, s.OpenAIBaseURL()+"/organization/costs"+openAIQuery(day0.Add(2*24*time.Hour), end, ""), auth)
	if !strings.Contains(body, `"value":1.5e-2`) {
		t.Fatalf("amount not written verbatim: %s", body)
	}
	// A window of one day holds one bucket and no more.
	status, v, _ := get(t, s.OpenAIBaseURL()+"/organization/costs"+openAIQuery(day0.Add(24*time.Hour), day0.Add(2*24*time.Hour), ""), auth)
	if status != 200 || len(v["data"].([]any)) != 1 || v["has_more"] != false {
		t.Fatalf("one-day window got %d %v", status, v)
	}
}

func TestAnthropic_PagesAndWindow(t *testing.T) {
	s := newFake(t)
	auth := map[string]string{"X-Api-Key": anthropicKey, "Anthropic-Version": AnthropicVersion}
	end := day0.Add(3 * 24 * time.Hour)
	status, v, body := get(t, s.URL()+AnthropicPath+anthropicQuery(day0, end, ""), auth)
	if status != 200 || v["has_more"] != true || len(v["data"].([]any)) != 2 {
		t.Fatalf("first page got %d %s", status, body)
	}
	b0 := v["data"].([]any)[0].(map[string]any)
	r0 := b0["results"].([]any)[0].(map[string]any)
	if b0["starting_at"] != "2026-11-26T00:00:00Z" || r0["amount"] != "123.45" || r0["currency"] != "USD" || r0["model"] != "claude-sonnet-4-5" {
		t.Fatalf("first bucket %v", b0)
	}
	r1 := v["data"].([]any)[1].(map[string]any)["results"].([]any)[0].(map[string]any)
	if r1["model"] != nil || r1["cost_type"] != "web_search" {
		t.Fatalf("web search result %v", r1)
	}
	status, v, body = get(t, s.URL()+AnthropicPath+anthropicQuery(day0, end, v["next_page"].(string)), auth)
	if status != 200 || v["has_more"] != false || len(v["data"].([]any)) != 1 || v["next_page"] != nil {
		t.Fatalf("second page got %d %s", status, body)
	}
	calls := s.Calls()
	if len(calls) != 2 || calls[1].Query.Get("page") == "" || calls[1].Status != 200 {
		t.Fatalf("calls %+v", calls)
	}
}

func TestKeysAndFailures(t *testing.T) {
	s := newFake(t)
	end := day0.Add(24 * time.Hour)
	oa := s.OpenAIBaseURL() + "/organization/costs" + openAIQuery(day0, end, "")
	an := s.URL() + AnthropicPath + anthropicQuery(day0, end, "")
	tests := []struct {
		name    string
		u       string
		header  map[string]string
		failure Failure
		status  int
		echo    string
	}{
		{"openai no key", oa, nil, Failure{}, 401, ""},
		{"openai wrong key", oa, map[string]string{"Authorization": "Bearer sk-admin-other"}, Failure{}, 401, ""},
		{"openai anthropic header", oa, map[string]string{"X-Api-Key": openAIKey}, Failure{}, 401, ""},
		{"anthropic wrong key", an, map[string]string{"X-Api-Key": openAIKey, "Anthropic-Version": AnthropicVersion}, Failure{}, 401, ""},
		{"anthropic no version", an, map[string]string{"X-Api-Key": anthropicKey}, Failure{}, 400, ""},
		{"openai bad page", oa + "&page=nope", map[string]string{"Authorization": "Bearer " + openAIKey}, Failure{}, 400, ""},
		{"openai fails", oa, map[string]string{"Authorization": "Bearer " + openAIKey}, Failure{Status: 500}, 500, ""},
		{"openai echoes", oa, map[string]string{"Authorization": "Bearer " + openAIKey}, Failure{Status: 403, EchoKey: true}, 403, openAIKey},
		{"anthropic echoes", an, map[string]string{"X-Api-Key": anthropicKey, "Anthropic-Version": AnthropicVersion}, Failure{Status: 529, EchoKey: true}, 529, anthropicKey},
		{"fails after a page", oa, map[string]string{"Authorization": "Bearer " + openAIKey}, Failure{Status: 500, AfterPages: 1}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetFailure(tt.failure)
			status, _, body := get(t, tt.u, tt.header)
			if status != tt.status {
				t.Fatalf("got %d %s, want %d", status, body, tt.status)
			}
			if tt.echo != "" && !strings.Contains(body, tt.echo) {
				t.Fatalf("the body does not echo the key: %s", body)
			}
			if tt.echo == "" && (strings.Contains(body, openAIKey) || strings.Contains(body, anthropicKey)) {
				t.Fatal("the body echoes a key it was not told to")
			}
		})
	}
	if status, _, _ := get(t, oa, map[string]string{"Authorization": "Bearer " + openAIKey}); status != 500 {
		t.Fatalf("second page after AfterPages 1 got %d, want 500", status)
	}
	s.Reset()
	if status, v, _ := get(t, oa, map[string]string{"Authorization": "Bearer " + openAIKey}); status != 200 || len(v["data"].([]any)[0].(map[string]any)["results"].([]any)) != 0 {
		t.Fatalf("after Reset got %d %v", status, v)
	}
}
