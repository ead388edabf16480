package apiserver

import (
	"bufio"
	"net"
	"net/http"
	"time"
)

// ServeHTTP serves one request and records it in the request metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l, ok := s.requestLabels(r)
	if !ok {
		s.serveHTTP(w, r)
		return
	}
	start := time.Now()
	long := l.verb == "WATCH" || l.verb == "CONNECT"
	switch {
	case long:
		defer s.metrics.trackLongRunning(l)()
	case l.verb == "GET" && l.subresource == "log":
		// A log stream is long-running for upstream's in-flight limit,
		// though reported as GET.
	default:
		kind := readOnlyKind
		if isMutatingVerb(l.verb) {
			kind = mutatingKind
		}
		s.metrics.inflight.start(kind)
		defer s.metrics.inflight.done(kind)
	}
	rw := &statusWriter{ResponseWriter: w}
	s.serveHTTP(rw, r)
	code := rw.code
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	s.metrics.observe(l, code, time.Since(start).Seconds())
}

func isMutatingVerb(v string) bool {
	switch v {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
		return true
	}
	return false
}

// nonResourcePaths are the non-resource paths recorded, each as its own
// subresource label as upstream does; other paths are not, so that
// arbitrary URLs cannot create series.
var nonResourcePaths = map[string]bool{
	"/healthz": true, "/livez": true, "/readyz": true, "/metrics": true, "/version": true,
	"/api": true, "/apis": true, "/openapi/v2": true, "/openapi/v3": true,
}

// requestLabels returns the label values upstream reports for r, and false
// for requests left unrecorded (paths that name nothing served).
func (s *Server) requestLabels(r *http.Request) (requestLabels, bool) {
	path := r.URL.Path
	if !isAPIPath(path) {
		if !nonResourcePaths[path] {
			return requestLabels{}, false
		}
		return requestLabels{verb: r.Method, subresource: path}, true
	}
	info, ok := parsePath(path)
	if !ok || !s.recordsResource(info) {
		return requestLabels{}, false
	}
	l := requestLabels{group: info.gv.Group, version: info.gv.Version, resource: info.resource, subresource: info.subresource}
	connect := false
	if sub, _, ok := splitConnect(info); ok {
		// Logs are a GET upstream; the rest are its connecters.
		l.subresource, connect = sub, sub != "log"
	}
	switch {
	case info.namespace != "" || (info.resource == "namespaces" && info.name != ""):
		l.scope = "namespace"
	case info.name != "":
		l.scope = "resource"
	default:
		l.scope = "cluster"
	}
	l.verb = reportedVerb(r, info, connect)
	if l.verb == "" {
		return requestLabels{}, false
	}
	if hasDryRunAll(r) {
		l.dryRun = "All"
	}
	return l, true
}

// recordsResource says whether info names a resource the server serves,
// which bounds the label values to the served set.
func (s *Server) recordsResource(info requestInfo) bool {
	gvr := info.gv.WithResource(info.resource)
	return info.gv == metricsGV || s.reviews[gvr] != nil || s.lookupResource(gvr) != nil
}

func isAPIPath(p string) bool {
	return len(p) > 5 && (p[:5] == "/api/" || (len(p) > 6 && p[:6] == "/apis/"))
}

// reportedVerb is the verb label upstream reports: the HTTP method for
// writes, LIST and WATCH for collection reads, APPLY for server-side apply
// and CONNECT for the streaming subresources.
func reportedVerb(r *http.Request, info requestInfo, connect bool) string {
	if connect {
		return "CONNECT"
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if info.name != "" {
			return "GET"
		}
		if isWatchQuery(r.URL.RawQuery) {
			return "WATCH"
		}
		return "LIST"
	case http.MethodPost:
		return "POST"
	case http.MethodPut:
		return "PUT"
	case http.MethodPatch:
		if r.Header.Get("Content-Type") == "application/apply-patch+yaml" {
			return "APPLY"
		}
		return "PATCH"
	case http.MethodDelete:
		if info.name == "" {
			return "DELETECOLLECTION"
		}
		return "DELETE"
	}
	return ""
}

// isWatchQuery reports whether the first watch parameter of a raw query
// asks for a watch (any value but "0" and "false"), without parsing the
// query into a map.
func isWatchQuery(q string) bool {
	v, ok := queryValue(q, "watch")
	return ok && v != "0" && v != "false" && v != "False" && v != "FALSE"
}

func hasDryRunAll(r *http.Request) bool {
	v, ok := queryValue(r.URL.RawQuery, "dryRun")
	return ok && v == "All"
}

// queryValue finds the first value of key in a raw query (keys and values
// that need unescaping never match, which is right for these parameters).
func queryValue(q, key string) (string, bool) {
	for q != "" {
		var kv string
		kv, q, _ = cut(q, '&')
		k, v, _ := cut(kv, '=')
		if k == key {
			return v, true
		}
	}
	return "", false
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// statusWriter remembers the status code a handler answers with. It keeps
// the writer's optional interfaces: watches flush, streams hijack, and
// http.ResponseController reaches the rest through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection over (upgraded streams); the switch of
// protocols is what upstream records for them.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
