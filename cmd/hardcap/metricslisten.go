package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/hardcap/hardcap/metrics"
)

// checkMetricsListen checks metrics_listen: empty, or a host:port other
// than the main listen address.
func checkMetricsListen(addr, listen string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("config: metrics_listen %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("config: metrics_listen %q has no port", addr)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("config: metrics_listen %q: the host is not an IP address or localhost", addr)
	}
	if addr == listen && port != "0" {
		return fmt.Errorf("config: metrics_listen %q is the listen address; give it a port of its own", addr)
	}
	return nil
}

// openMetricsListener listens on metrics_listen, when set: a server of its
// own that answers GET /metrics with no token and nothing else, so a
// Prometheus server needs no credential and the main listener's requests
// never share its connection limits.
func (m *Main) openMetricsListener(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics_listen: %w", err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !loopbackHost(host) {
		m.log.Warn().Str("metrics_listen", ln.Addr().String()).
			Msg("metrics_listen is not loopback: whoever reaches it reads project names, budgets and spend without a token")
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.GetOnly(m.metrics.Handler()))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "This address serves GET /metrics only.", http.StatusNotFound)
	})
	m.metricsListener = ln
	m.metricsServer = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(logWriter{m.log}, "", 0),
	}
	return nil
}

// MetricsAddr is the address metrics_listen listens on, or "" when it is
// not set.
func (m *Main) MetricsAddr() string {
	if m.metricsListener == nil {
		return ""
	}
	return m.metricsListener.Addr().String()
}
