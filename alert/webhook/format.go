package webhook

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hardcap/hardcap/alert"
)

// field is one labelled value of an alert shown to people.
type field struct{ name, value string }

// title says an alert's type in words: "Budget 80 % reached".
func title(a alert.Alert) string {
	var t string
	switch a.Type {
	case alert.TypeThreshold:
		t = "Budget threshold reached"
		if a.Threshold != nil {
			t = "Budget " + a.Threshold.Percent() + " reached"
		}
	case alert.TypeExhausted:
		t = "Budget exhausted"
	case alert.TypeNewIP:
		t = "New client address"
	case alert.TypeSpendSpike:
		t = "Spend spike"
	case alert.TypeNewModel:
		t = "New model or route"
	case alert.TypeKeyRejected:
		t = "Provider refused the real key"
	case alert.TypeOvershoot:
		t = "Spend above the limit"
	case alert.TypeReconcileDrift:
		t = "Provider spend above the books"
	case alert.TypeFrozen:
		t = "Token frozen"
		if a.Scope.Kind == "project" {
			t = "Project frozen"
		}
	case alert.TypeTest:
		t = "Test alert"
	default:
		t = string(a.Type)
	}
	if a.Action == alert.ActionFreeze && a.Type != alert.TypeFrozen {
		t += " (frozen)"
	}
	return t
}

// scopeText says what an alert is about: "token tok_1 (project web)".
func scopeText(s alert.Scope) string {
	switch {
	case s.TokenID != "" && s.Project != "":
		return "token " + s.TokenID + " (project " + s.Project + ")"
	case s.TokenID != "":
		return "token " + s.TokenID
	case s.Project != "":
		return "project " + s.Project
	case s.Provider != "":
		return "provider " + s.Provider
	}
	if s.Kind == "" {
		return "global"
	}
	return s.Kind
}

// fields are the labelled values of a, those present, details last in
// name order.
func fields(a alert.Alert) []field {
	out := []field{{"Scope", scopeText(a.Scope)}}
	if a.Window != "" {
		out = append(out, field{"Window", a.Window})
	}
	if a.Spent != 0 || a.Limit != nil {
		out = append(out, field{"Spent", a.Spent.String() + " USD"})
	}
	if a.Limit != nil {
		out = append(out, field{"Limit", a.Limit.String() + " USD"})
	}
	if a.Threshold != nil {
		out = append(out, field{"Threshold", a.Threshold.Percent()})
	}
	if a.Action != "" {
		out = append(out, field{"Action", string(a.Action)})
	}
	for _, k := range slices.Sorted(maps.Keys(a.Details)) {
		if a.Details[k] != "" {
			out = append(out, field{k, a.Details[k]})
		}
	}
	return out
}

// cut shortens s to at most n bytes on a rune boundary, marking the cut:
// chat services refuse a message whose parts are over their limits.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// slackEscape escapes the three characters Slack reads as markup; model
// names and addresses come from clients.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "://", ":\u200b//")

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

// Slack's limits on Block Kit parts (bytes here, characters there).
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
	slackFieldsMax  = 10
)

// slackBody is a Block Kit message for a Slack incoming webhook.
func slackBody(a alert.Alert) ([]byte, error) {
	msg := cut(slackEscape.Replace(a.Message), slackSectionMax)
	blocks := []slackBlock{
		{Type: "header", Text: &slackText{"plain_text", cut(slackEscape.Replace(title(a)), slackHeaderMax)}},
	}
	section := slackBlock{Type: "section", Text: &slackText{"mrkdwn", msg}}
	for i, f := range fields(a) {
		if i == slackFieldsMax {
			break
		}
		text := "*" + slackEscape.Replace(f.name) + "*\n" + slackEscape.Replace(f.value)
		section.Fields = append(section.Fields, slackText{"mrkdwn", cut(text, slackFieldMax)})
	}
	blocks = append(blocks, section, slackBlock{Type: "context", Elements: []slackText{{"mrkdwn",
		cut(slackEscape.Replace(a.ID)+" · "+a.Time.UTC().Format(time.RFC3339), slackFieldMax)}}})
	return json.Marshal(slackMessage{Text: msg, Blocks: blocks})
}

// Discord embed colours.
const (
	colorRed   = 0xD93025
	colorAmber = 0xF2A900
	colorBlue  = 0x1E88E5
)

// color is the embed colour of a: red when money is gone or a freeze
// happened, amber for a threshold, blue else.
func color(a alert.Alert) int {
	switch {
	case a.Action == alert.ActionFreeze, a.Type == alert.TypeFrozen,
		a.Type == alert.TypeExhausted, a.Type == alert.TypeOvershoot:
		return colorRed
	case a.Type == alert.TypeThreshold:
		return colorAmber
	}
	return colorBlue
}

// discordMentions breaks the mass mentions in client text; the message's
// allowed_mentions already keeps Discord from pinging, this keeps the text
// from reading as one.
var discordMentions = strings.NewReplacer("@everyone", "@\u200beveryone", "@here", "@\u200bhere")

// discordText also escapes Discord's markdown in the text an embed
// renders it in (the description and field values), so that client text
// (a user agent, a model name) cannot make a link or hide a line; a
// bare URL gets a zero-width space after its scheme, so it is not one.
var discordText = strings.NewReplacer("@everyone", "@\u200beveryone", "@here", "@\u200bhere", "://", ":\u200b//",
	`\`, `\\`, "[", `\[`, "]", `\]`, "(", `\(`, ")", `\)`, "*", `\*`, "_", `\_`, "~", `\~`,
	"`", "\\`", "|", `\|`, ">", `\>`, "#", `\#`, "<", `\<`)

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields,omitempty"`
	Timestamp   string         `json:"timestamp"`
	Footer      struct {
		Text string `json:"text"`
	} `json:"footer"`
}

type discordMessage struct {
	Content         string         `json:"content"`
	Embeds          []discordEmbed `json:"embeds"`
	AllowedMentions struct {
		Parse []string `json:"parse"`
	} `json:"allowed_mentions"`
}

// Discord's limits on embed parts.
const (
	discordTitleMax       = 256
	discordDescriptionMax = 4096
	discordFieldNameMax   = 256
	discordFieldValueMax  = 1024
	discordFieldsMax      = 25
)

// discordBody is an embed message for a Discord webhook; it mentions no
// one whatever the alert's text says.
func discordBody(a alert.Alert) ([]byte, error) {
	e := discordEmbed{
		Title:       cut(discordMentions.Replace(title(a)), discordTitleMax),
		Description: cut(discordText.Replace(a.Message), discordDescriptionMax),
		Color:       color(a),
		Timestamp:   a.Time.UTC().Format(time.RFC3339),
	}
	e.Footer.Text = discordMentions.Replace(a.ID)
	for i, f := range fields(a) {
		if i == discordFieldsMax {
			break
		}
		e.Fields = append(e.Fields, discordField{
			Name:   cut(discordMentions.Replace(f.name), discordFieldNameMax),
			Value:  cut(discordText.Replace(f.value), discordFieldValueMax),
			Inline: true,
		})
	}
	m := discordMessage{Embeds: []discordEmbed{e}}
	m.AllowedMentions.Parse = []string{}
	return json.Marshal(m)
}

// body is what a webhook of format f receives for a.
func body(f Format, a alert.Alert) ([]byte, error) {
	switch f {
	case FormatSlack:
		return slackBody(a)
	case FormatDiscord:
		return discordBody(a)
	}
	return json.Marshal(a)
}
