package dashboard

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// apiProxy forwards the page's /api and /apis requests to the API server
// with the caller's bearer token and nothing else of the caller's headers:
// the API server decides what the caller may see.
type apiProxy struct {
	rp       *httputil.ReverseProxy
	writable bool
}

// forwardedHeaders are the request headers passed to the API server.
var forwardedHeaders = []string{"Authorization", "Accept", "Content-Type"}

func newAPIProxy(upstream *url.URL, transport http.RoundTripper, writable bool, log *slog.Logger) *apiProxy {
	rp := &httputil.ReverseProxy{
		Transport: transport,
		// Watches and followed logs must reach the page as they come.
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Host = upstream.Host
			pr.Out.Header = http.Header{}
			for _, k := range forwardedHeaders {
				if v := pr.In.Header.Values(k); len(v) > 0 {
					pr.Out.Header[k] = v
				}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			// Whatever the API server returns is data, never a document of
			// the dashboard's origin (where the user's token lives).
			resp.Header.Set("Content-Security-Policy", "default-src 'none'; sandbox")
			resp.Header.Set("X-Content-Type-Options", "nosniff")
			resp.Header.Del("Set-Cookie")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				log.Warn("dashboard: API server request failed", "path", r.URL.Path, "err", err)
			}
			http.Error(w, "the API server did not answer", http.StatusBadGateway)
		},
	}
	return &apiProxy{rp: rp, writable: writable}
}

func (p *apiProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && !p.writable {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "the dashboard is read-only (skiff --dashboard-writable allows changes)", http.StatusMethodNotAllowed)
		return
	}
	if reason := refused(r); reason != "" {
		http.Error(w, reason, http.StatusForbidden)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// refused explains why a request is not proxied at all: connection
// upgrades (exec, attach, port-forward) are beyond what the page does, and
// the proxy subresources would let a pod serve pages on the dashboard's
// origin.
func refused(r *http.Request) string {
	if r.Header.Get("Upgrade") != "" || strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
		return "the dashboard does not proxy connection upgrades"
	}
	if r.URL.RawPath != "" {
		// Object names never need escaping; an escaped slash would make
		// the API server see another path than the one checked here.
		return "the dashboard does not proxy escaped paths"
	}
	switch sub := subresource(r.URL.Path); sub {
	case "proxy", "exec", "attach", "portforward":
		return "the dashboard does not proxy the " + sub + " subresource"
	}
	return ""
}

// subresource is the subresource a request path names, if any:
// /api/v1/namespaces/NS/RES/NAME/SUB or /api(s)/.../RES/NAME/SUB.
func subresource(path string) string {
	var rest string
	if after, ok := strings.CutPrefix(path, "/api/"); ok {
		_, rest, _ = strings.Cut(after, "/") // version
	} else if after, ok := strings.CutPrefix(path, "/apis/"); ok {
		parts := strings.SplitN(after, "/", 3) // group, version, rest
		if len(parts) == 3 {
			rest = parts[2]
		}
	}
	parts := strings.Split(rest, "/")
	if parts[0] == "namespaces" {
		switch {
		case len(parts) >= 5:
			return parts[4]
		case len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize"):
			return parts[2] // of the namespace itself
		}
		return ""
	}
	if len(parts) >= 3 {
		return parts[2]
	}
	return ""
}
