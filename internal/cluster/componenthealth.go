package cluster

import (
	"context"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/apiserver"
)

// inProcess tracks whether a component started by this server (the
// scheduler, the controller manager) is still running, which is what
// componentstatuses can know of it: upstream probes the component's
// /healthz, which answers ok while its process runs.
type inProcess struct{ running atomic.Bool }

// run marks the component running for the duration of fn.
func (c *inProcess) run(fn func()) {
	c.running.Store(true)
	defer c.running.Store(false)
	fn()
}

func (c *inProcess) check(context.Context) apiserver.ComponentHealth {
	if c.running.Load() {
		return apiserver.ComponentHealth{Status: corev1.ConditionTrue, Message: "ok"}
	}
	return apiserver.ComponentHealth{Status: corev1.ConditionFalse, Message: "stopped: it exited in this server"}
}

// componentChecks are the health checks of the components this server
// runs; the disabled ones are left to upstream's probe of their port.
func componentChecks(cfg ServerConfig, scheduler, controllers *inProcess) map[string]apiserver.ComponentCheck {
	checks := map[string]apiserver.ComponentCheck{}
	if !cfg.DisableScheduler {
		checks["scheduler"] = scheduler.check
	}
	if !cfg.DisableControllers {
		checks["controller-manager"] = controllers.check
	}
	return checks
}
