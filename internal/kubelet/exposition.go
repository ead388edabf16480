package kubelet

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiff-dev/skiff/internal/metricshttp"
)

// exposition writes Prometheus' text format directly. /metrics/cadvisor
// and /metrics/resource rebuild every series at each scrape, of every
// node; through a registry (a protobuf message per series, sorting,
// consistency checks, then encoding) that costs several times the CPU of
// writing the text, and the series are unique by construction.
type exposition struct {
	families []*family // the first used are this scrape's; the rest wait for reuse
	used     int
	head     []byte
}

// family is one metric family; its samples are written together, as the
// format requires.
type family struct {
	name, help, typ string
	body            []byte
}

// Expositions are pooled so the families' buffers are reused.
var expositions = sync.Pool{New: func() any { return &exposition{} }}

// serveExposition answers with what write produces, gzipped for clients
// that accept it.
func serveExposition(write func(*exposition)) http.Handler {
	return metricshttp.FastGzip(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e := expositions.Get().(*exposition)
		defer expositions.Put(e)
		e.used = 0
		write(e)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		for _, f := range e.families[:e.used] {
			if len(f.body) == 0 {
				continue
			}
			h := append(e.head[:0], "# HELP "...)
			h = append(h, f.name...)
			h = append(h, ' ')
			h = appendEscaped(h, f.help, false)
			h = append(h, "\n# TYPE "...)
			h = append(h, f.name...)
			h = append(h, ' ')
			h = append(h, f.typ...)
			e.head = append(h, '\n')
			if _, err := w.Write(e.head); err != nil {
				return
			}
			if _, err := w.Write(f.body); err != nil {
				return
			}
		}
	}))
}

// family starts a family (typ "counter" or "gauge"); its samples follow.
func (e *exposition) family(name, help, typ string) *family {
	if e.used == len(e.families) {
		e.families = append(e.families, &family{})
	}
	f := e.families[e.used]
	e.used++
	f.name, f.help, f.typ, f.body = name, help, typ, f.body[:0]
	return f
}

// add writes one sample; labels are name, value pairs. A zero time leaves
// the sample unstamped.
func (f *family) add(v float64, at time.Time, labels ...string) {
	b := append(f.body, f.name...)
	if len(labels) > 0 {
		b = append(b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, `="`...)
			b = appendEscaped(b, labels[i+1], true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	if !at.IsZero() {
		b = append(b, ' ')
		b = strconv.AppendInt(b, at.UnixMilli(), 10)
	}
	f.body = append(b, '\n')
}

// appendEscaped escapes backslashes and newlines, and in label values
// double quotes, as the text format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}
