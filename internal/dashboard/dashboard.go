// Package dashboard serves Skiff's web dashboard: one static page that
// shows the cluster live through the API server's own HTTP API, and a small
// in-memory history of CPU and memory usage for its charts.
//
// The dashboard holds no privileges on the user's behalf: it forwards the
// caller's bearer token to the API server, which authenticates and
// authorizes every request. Its own identity only reads metrics.k8s.io.
package dashboard

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"k8s.io/client-go/rest"
)

//go:embed static
var staticFiles embed.FS

// Config configures a dashboard.
type Config struct {
	// RESTConfig reaches the API server as the dashboard's own identity,
	// used only to sample metrics.k8s.io. User requests go to the same
	// host with the same CA but none of these credentials.
	RESTConfig *rest.Config
	// Writable lets the proxy pass methods other than GET (off: read-only).
	Writable bool
	// SampleInterval is how often usage is sampled (default 15 s) and
	// History how much of it is kept (default one hour).
	SampleInterval, History time.Duration
	Logger                  *slog.Logger
}

// Dashboard is the dashboard's HTTP handler and usage sampler.
type Dashboard struct {
	cfg     Config
	mux     *http.ServeMux
	proxy   *apiProxy
	sampler *sampler
	log     *slog.Logger
}

// New builds a dashboard; call Run to sample usage and Serve (or use it as
// an http.Handler) to answer requests.
func New(cfg Config) (*Dashboard, error) {
	if cfg.RESTConfig == nil {
		return nil, errors.New("dashboard: no API server configuration")
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 15 * time.Second
	}
	if cfg.History <= 0 {
		cfg.History = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	upstream, err := url.Parse(cfg.RESTConfig.Host)
	if err != nil || upstream.Host == "" {
		return nil, fmt.Errorf("dashboard: bad API server address %q", cfg.RESTConfig.Host)
	}
	// Users' requests carry only their own credentials: the anonymous copy
	// keeps the CA and drops the dashboard's certificate and token.
	userTransport, err := rest.TransportFor(rest.AnonymousClientConfig(cfg.RESTConfig))
	if err != nil {
		return nil, fmt.Errorf("dashboard: API server transport: %w", err)
	}
	ownClient, err := rest.HTTPClientFor(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("dashboard: API server client: %w", err)
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger}
	d.proxy = newAPIProxy(upstream, userTransport, cfg.Writable, cfg.Logger)
	d.sampler = newSampler(upstream, ownClient, cfg.SampleInterval, cfg.History, cfg.Logger)
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	d.mux = http.NewServeMux()
	d.mux.Handle("/api", d.proxy)
	d.mux.Handle("/api/", d.proxy)
	d.mux.Handle("/apis", d.proxy)
	d.mux.Handle("/apis/", d.proxy)
	d.mux.Handle("GET /dashboard/usage", &usageHandler{
		sampler: d.sampler, access: &accessChecker{upstream: upstream, client: &http.Client{Transport: userTransport}},
	})
	d.mux.Handle("/", withPageHeaders(http.FileServerFS(static)))
	return d, nil
}

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

// Run samples usage until ctx ends.
func (d *Dashboard) Run(ctx context.Context) { d.sampler.run(ctx) }

// Serve answers HTTPS on ln with cert until ctx ends, then closes open
// streams (watches, logs) after a short grace period.
func (d *Dashboard) Serve(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	srv := &http.Server{
		Handler: d,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			// HTTP/2 matters: the page holds one watch per resource, more
			// than a browser's six HTTP/1.1 connections per host.
			NextProtos: []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		// Handlers (long watches among them) end with ctx.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("dashboard: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dashboard: serve: %w", err)
	}
	return nil
}

// withPageHeaders keeps the page's scripts to its own files and connections
// to its own origin, so that a pod's name or log line can never run as
// script with the user's token at hand.
func withPageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
