// Package manager runs Skiff's controllers: it builds the clients and the
// shared informers they use, starts each controller, and (optionally) does
// so only while holding the kube-system/kube-controller-manager Lease.
package manager

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/informerutil"
	"github.com/skiff-dev/skiff/internal/leaderelect"
)

// Controller is one reconcile loop.
type Controller interface {
	Run(ctx context.Context)
}

// Config configures the manager.
type Config struct {
	RESTConfig  *rest.Config
	LeaderElect bool
	// ClusterCIDR is the pod network nodes get their pod CIDRs from.
	ClusterCIDR string
	// RootCA is the cluster CA (PEM) published as kube-root-ca.crt in every
	// namespace; empty leaves that controller off.
	RootCA []byte
	// UseServiceAccountCredentials runs each controller as its own
	// ServiceAccount in kube-system, with upstream's per-controller roles
	// (kube-controller-manager's --use-service-account-credentials). The
	// shared informers and leader election keep RESTConfig's identity.
	UseServiceAccountCredentials bool
	// Local, when the controllers run in the API server's process, serves
	// the informers of the kinds that grow with the cluster from the
	// server's cache (informerutil).
	Local  informerutil.Local
	Logger *slog.Logger
}

// Run runs every controller until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The process's /metrics (the server's, in `skiff server`) serves
	// the controllers' workqueue_* series.
	useWorkqueueMetrics(prometheus.DefaultRegisterer)
	client, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return err
	}
	ids := identities{own: identity{client: client, config: cfg.RESTConfig}}
	if cfg.UseServiceAccountCredentials {
		ids.builder = NewClientBuilder(cfg.RESTConfig, client, cfg.Logger)
	}
	run := func(ctx context.Context) {
		// The informers use the manager's own identity, whose role may
		// list and watch everything; each controller writes as itself.
		factory := newInformerFactory(client, cfg.Local)
		log := cfg.Logger
		controllers, err := buildControllers(ids, factory, cfg)
		if err != nil {
			log.Error("build controllers", "err", err)
			return
		}
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				// Only an ended ctx stops a sync. The controllers still
				// run, with that ctx: each returns at once and releases
				// the queues and broadcasters building it started.
				log.Debug("stopped before the informers synced", "type", fmt.Sprint(typ))
				break
			}
		}
		var wg sync.WaitGroup
		for name, c := range controllers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer crash.Recover(log.With("controller", name), "controller")
				log.Debug("controller started", "controller", name)
				c.Run(ctx)
			}()
		}
		wg.Wait()
	}
	if !cfg.LeaderElect {
		run(ctx)
		return nil
	}
	return leaderelect.Run(ctx, client, "kube-controller-manager", cfg.Logger, run)
}

// newInformerFactory is the one informer factory all controllers share. Its
// caches hold objects without their managed fields, which no controller
// reads (as upstream's controller manager does), or the server's own
// objects when local serves them.
func newInformerFactory(client kubernetes.Interface, local informerutil.Local) informers.SharedInformerFactory {
	return informerutil.NewFactory(client, 10*time.Hour, local)
}
