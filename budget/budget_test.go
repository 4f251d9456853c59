package budget

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLimit_JSON(t *testing.T) {
	tests := []struct {
		l    Limit
		json string
	}{
		{NoLimit(Month), `{"limit_usd":null,"period":"month"}`},
		{Ceiling(0, Total), `{"limit_usd":"0.000000","period":"total"}`},
		{Ceiling(1_500_000_000, Day), `{"limit_usd":"1.500000","period":"day"}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.l)
		if err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tt.l, b, err, tt.json)
		}
		var back Limit
		if err := json.Unmarshal(b, &back); err != nil || back != tt.l {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", b, back, err, tt.l)
		}
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		usd, period string
		want        Limit
		err         bool
	}{
		{"", "", NoLimit(Total), false},
		{"unlimited", "month", NoLimit(Month), false},
		{"UNLIMITED", "", NoLimit(Total), false},
		{"0", "day", Ceiling(0, Day), false},
		{"0.000", "", Ceiling(0, Total), false},
		{"5", "week", Ceiling(5*NanoPerUSD, Week), false},
		{"-1", "", Limit{}, true},
		{"5", "year", Limit{}, true},
		{"lots", "", Limit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseLimit(tt.usd, tt.period)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseLimit(%q, %q) = %+v, %v; want %+v (error %v)", tt.usd, tt.period, got, err, tt.want, tt.err)
		}
	}
	if Ceiling(0, Total).Unlimited() || !NoLimit(Total).Unlimited() {
		t.Error("Unlimited: a zero ceiling must be a limit and NoLimit none")
	}
}

func TestClip(t *testing.T) {
	if got := Clip("short"); got != "short" {
		t.Errorf("Clip(short) = %q", got)
	}
	long := strings.Repeat("é", 1000)
	got := Clip(long)
	if utf8.RuneCountInString(got) > ClipLen+20 || !strings.Contains(got, "(2000 bytes)") || !utf8.ValidString(got) {
		t.Errorf("Clip of 1000 runes = %q", got)
	}
	if got := Clip("a\xffb"); !utf8.ValidString(got) {
		t.Errorf("Clip kept invalid UTF-8: %q", got)
	}
}
