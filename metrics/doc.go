// Package metrics exposes hardcap's books and data plane to Prometheus:
// the ledger writer's commits, the spend and headroom of the budgets, the
// alert outbox and per-request counts. It is the only package that
// imports Prometheus.
//
// Everything but the request counters is read when a scrape comes, from
// what storage and the proxy already keep, so it costs nothing per
// request; the request counters are fed by the proxy's Observer hook.
// No label ever holds a token id or a secret: projects, routes, providers,
// models, outcomes and refusal codes only.
package metrics
