// Package metricshttp serves Prometheus metrics the way every Skiff
// endpoint should: the text exposition, compressed at gzip's fastest level
// for scrapers that accept gzip.
package metricshttp

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves g's metrics, fast-gzipped (see FastGzip).
func Handler(g prometheus.Gatherer) http.Handler {
	return FastGzip(promhttp.HandlerFor(g, promhttp.HandlerOpts{DisableCompression: true}))
}

// writers hold fastest-level gzip writers: at promhttp's default level
// compressing a scrape costs more CPU than producing it, and a node is
// scraped several times per interval; the fastest level still shrinks
// the text about fivefold.
var writers = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// FastGzip compresses h's answers for clients that accept gzip, as
// Prometheus does, and passes other requests through unchanged.
func FastGzip(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.ServeHTTP(w, r)
			return
		}
		gz := writers.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() {
			_ = gz.Close()
			writers.Put(gz)
		}()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		h.ServeHTTP(response{ResponseWriter: w, body: gz}, r)
	})
}

func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		// "gzip;q=0" refuses gzip.
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// response sends the handler's body through the gzip writer.
type response struct {
	http.ResponseWriter
	body io.Writer
}

func (r response) Write(p []byte) (int, error) { return r.body.Write(p) }
