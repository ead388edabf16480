package apiserver

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/storage"
)

// requestDurationBuckets are upstream's buckets for request (and etcd
// request) latencies; dashboards and SLO rules name these bounds.
var requestDurationBuckets = []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3,
	4, 5, 6, 8, 10, 15, 20, 30, 45, 60}

// requestLabelNames are apiserver_request_duration_seconds' labels, in
// upstream's order; apiserver_request_total adds "code".
var requestLabelNames = []string{"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"}

// component is the value of the component label, as upstream's server.
const component = "apiserver"

// apiMetrics are the API server's own series, in a registry of its own so
// that several servers in one process (tests) do not collide.
type apiMetrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	longRunning *prometheus.GaugeVec
	watchers    *prometheus.GaugeVec
	inflight    *inflightWatermark

	// The children of the vectors, by label values: a request finds its
	// series with one map lookup instead of hashing label strings.
	mu     sync.RWMutex
	counts map[countKey]prometheus.Counter
	obs    map[requestLabels]prometheus.Observer
}

// requestLabels are the label values of one request's series.
type requestLabels struct {
	verb, dryRun, group, version, resource, subresource, scope string
}

type countKey struct {
	requestLabels
	code int
}

func newAPIMetrics(s *Server) *apiMetrics {
	m := &apiMetrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
		}, append(append([]string(nil), requestLabelNames...), "code")),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
			Buckets: requestDurationBuckets,
		}, requestLabelNames),
		longRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_longrunning_requests",
			Help: "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.",
		}, []string{"verb", "group", "version", "resource", "subresource", "scope", "component"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_registered_watchers",
			Help: "Number of currently registered watchers for a given resources",
		}, []string{"group", "version", "kind"}),
		inflight: newInflightWatermark(),
		counts:   map[countKey]prometheus.Counter{},
		obs:      map[requestLabels]prometheus.Observer{},
	}
	m.registry.MustRegister(m.requests, m.durations, m.longRunning, m.watchers, m.inflight, storageObjects{s})
	if s.cfg.Store != nil {
		m.registry.MustRegister(s.cfg.Store.Collectors()...)
	}
	return m
}

// Metrics is what the server's /metrics adds to the process's registry:
// request, watch, storage and etcd series.
func (s *Server) Metrics() prometheus.Gatherer { return s.metrics.registry }

// observe records one finished request.
func (m *apiMetrics) observe(l requestLabels, code int, seconds float64) {
	k := countKey{l, code}
	m.mu.RLock()
	c, okc := m.counts[k]
	o, oko := m.obs[l]
	m.mu.RUnlock()
	if !okc || !oko {
		c, o = m.add(k)
	}
	c.Inc()
	o.Observe(seconds)
}

// add creates the series of k on first use. The label strings are copied:
// they may be slices of a request's URL.
func (m *apiMetrics) add(k countKey) (prometheus.Counter, prometheus.Observer) {
	l := requestLabels{
		verb: k.verb, dryRun: k.dryRun, group: strings.Clone(k.group), version: strings.Clone(k.version),
		resource: strings.Clone(k.resource), subresource: strings.Clone(k.subresource), scope: k.scope,
	}
	k.requestLabels = l
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counts[k]
	if !ok {
		c = m.requests.WithLabelValues(l.verb, l.dryRun, l.group, l.version, l.resource, l.subresource, l.scope, component, strconv.Itoa(k.code))
		m.counts[k] = c
	}
	o, ok := m.obs[l]
	if !ok {
		o = m.durations.WithLabelValues(l.verb, l.dryRun, l.group, l.version, l.resource, l.subresource, l.scope, component)
		m.obs[l] = o
	}
	return c, o
}

// trackLongRunning counts a watch or connect request while it runs; call
// the returned function when it ends.
func (m *apiMetrics) trackLongRunning(l requestLabels) func() {
	g := m.longRunning.WithLabelValues(l.verb, l.group, l.version, l.resource, l.subresource, l.scope, component)
	g.Inc()
	return g.Dec
}

// watcherAdded counts a registered watcher of gvk until the returned
// function is called.
func (m *apiMetrics) watcherAdded(gvk schema.GroupVersionKind) func() {
	g := m.watchers.WithLabelValues(gvk.Group, gvk.Version, gvk.Kind)
	g.Inc()
	return g.Dec
}

// Request kinds of apiserver_current_inflight_requests.
const (
	readOnlyKind = iota
	mutatingKind
)

// inflightWatermark reports, as upstream, the highest number of requests
// executing at once per kind since the previous scrape, so short bursts
// between scrapes still show.
type inflightWatermark struct {
	desc    *prometheus.Desc
	current [2]atomic.Int64
	high    [2]atomic.Int64
}

func newInflightWatermark() *inflightWatermark {
	return &inflightWatermark{desc: prometheus.NewDesc("apiserver_current_inflight_requests",
		"Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
		[]string{"request_kind"}, nil)}
}

// start counts one request of kind; call done when it ends.
func (w *inflightWatermark) start(kind int) {
	n := w.current[kind].Add(1)
	for {
		h := w.high[kind].Load()
		if n <= h || w.high[kind].CompareAndSwap(h, n) {
			return
		}
	}
}

func (w *inflightWatermark) done(kind int) { w.current[kind].Add(-1) }

// Describe implements prometheus.Collector.
func (w *inflightWatermark) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

// Collect implements prometheus.Collector: the watermark, which then
// restarts from the requests executing now.
func (w *inflightWatermark) Collect(ch chan<- prometheus.Metric) {
	for kind, name := range [2]string{"readOnly", "mutating"} {
		h := w.high[kind].Swap(w.current[kind].Load())
		ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(h), name)
	}
}

var storageObjectsDesc = prometheus.NewDesc("apiserver_storage_objects",
	"Number of stored objects at the time of last check split by kind.", []string{"resource"}, nil)

// storageObjects reports the objects of each resource, counted in the
// watch caches at scrape time (upstream counts in etcd every minute; the
// caches hold the same objects without a round trip).
type storageObjects struct{ s *Server }

// Describe implements prometheus.Collector.
func (c storageObjects) Describe(ch chan<- *prometheus.Desc) { ch <- storageObjectsDesc }

// Collect implements prometheus.Collector.
func (c storageObjects) Collect(ch chan<- prometheus.Metric) {
	seen := map[schema.GroupResource]bool{}
	report := func(r *resource) {
		if r.cache == nil || seen[r.gr] {
			return
		}
		seen[r.gr] = true
		ch <- prometheus.MustNewConstMetric(storageObjectsDesc, prometheus.GaugeValue, float64(countEntries(r.cache, r.prefix)), r.gr.String())
	}
	for _, r := range c.s.resources {
		report(r)
	}
	for _, r := range c.s.customResources().byGVR {
		report(r)
	}
}

// countEntries counts a cache's objects under prefix without collecting
// them.
func countEntries(c *storage.Cache, prefix string) int {
	n := 0
	c.List(prefix, func(*storage.Entry) bool { n++; return false })
	return n
}
