// Package crash keeps a panic in one request handler, reconcile loop or
// scheduling attempt from taking down the whole process (which, for
// `skiff server`, also holds etcd): the panic is recovered, logged at error
// level with its stack, and counted in skiff_panics_total.
package crash

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

var panics = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "skiff_panics_total",
	Help: "Panics recovered without stopping the process, by component.",
}, []string{"component"})

func init() {
	prometheus.MustRegister(panics)
}

// Count returns how many panics of component have been recovered.
func Count(component string) float64 {
	var m dto.Metric
	if err := panics.WithLabelValues(component).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// Recovered logs and counts a panic value already recovered by the caller.
func Recovered(log *slog.Logger, component string, r any) {
	if log == nil {
		log = slog.Default()
	}
	panics.WithLabelValues(component).Inc()
	log.Error("recovered from panic", "component", component, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
}

// Recover, deferred, recovers a panic of the surrounding function, then
// logs and counts it. http.ErrAbortHandler, net/http's way to abort a
// response, is passed on.
func Recover(log *slog.Logger, component string) {
	if r := recover(); r != nil {
		if r == http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, never wrapped
			panic(r)
		}
		Recovered(log, component, r)
	}
}

var installOnce sync.Once

// InstallClientGoHandler makes client-go's HandleCrash (informer event
// handlers, wait.Until loops) count the panics it sees and return instead
// of re-panicking, which would end the process.
func InstallClientGoHandler() {
	installOnce.Do(func() {
		utilruntime.ReallyCrash = false
		utilruntime.PanicHandlers = append(utilruntime.PanicHandlers, func(_ context.Context, _ any) {
			panics.WithLabelValues("client-go").Inc()
		})
	})
}
