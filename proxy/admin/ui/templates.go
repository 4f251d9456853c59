package ui

import (
	"html/template"
	"strings"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
)

// budgetForm is the content of the budget change form of a project's or a
// token's page.
type budgetForm struct {
	Action string
	Budget admin.BudgetView
	CSRF   string
}

// pageNames are the page templates, each parsed with layout.html and
// partials.html.
var pageNames = []string{"login.html", "error.html", "overview.html", "projects.html", "project.html", "token.html",
	"secret.html", "confirm.html", "usage.html", "record.html", "alerts.html", "audit.html"}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"usd":         usd,
	"usdPtr":      usdPtr,
	"amount":      amount,
	"budgetForm":  func(action string, b admin.BudgetView, csrf string) budgetForm { return budgetForm{action, b, csrf} },
	"when":        when,
	"join":        strings.Join,
	"tokenStatus": tokenStatus,
	"periods": func() []string {
		return []string{string(budget.Day), string(budget.Week), string(budget.Month), string(budget.Total)}
	},
}

// parsePages parses the embedded templates; they are part of the binary,
// so a template that does not parse is a bug caught by any test.
func parsePages() map[string]*template.Template {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		out[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name))
	}
	return out
}
