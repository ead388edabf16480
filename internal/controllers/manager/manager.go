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

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/controllers/cronjob"
	"github.com/skiff-dev/skiff/internal/controllers/daemonset"
	"github.com/skiff-dev/skiff/internal/controllers/deployment"
	"github.com/skiff-dev/skiff/internal/controllers/endpoints"
	"github.com/skiff-dev/skiff/internal/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/internal/controllers/job"
	"github.com/skiff-dev/skiff/internal/controllers/namespace"
	"github.com/skiff-dev/skiff/internal/controllers/nodelifecycle"
	"github.com/skiff-dev/skiff/internal/controllers/podgc"
	"github.com/skiff-dev/skiff/internal/controllers/replicaset"
	"github.com/skiff-dev/skiff/internal/controllers/serviceaccount"
	"github.com/skiff-dev/skiff/internal/controllers/servicelb"
	"github.com/skiff-dev/skiff/internal/controllers/statefulset"
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
	Logger      *slog.Logger
}

// Run runs every controller until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return err
	}
	metaClient, err := metadata.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return err
	}
	run := func(ctx context.Context) {
		factory := informers.NewSharedInformerFactory(client, 10*time.Hour)
		log := cfg.Logger
		nodes, err := nodelifecycle.New(client, factory, nodelifecycle.Config{ClusterCIDR: cfg.ClusterCIDR}, log.With("controller", "nodelifecycle"))
		if err != nil {
			log.Error("node lifecycle controller", "err", err)
			return
		}
		controllers := map[string]Controller{
			"nodelifecycle":         nodes,
			"namespace":             namespace.New(client, dyn, factory, log.With("controller", "namespace")),
			"serviceaccount":        serviceaccount.New(client, factory, log.With("controller", "serviceaccount")),
			"garbagecollector":      garbagecollector.New(metaClient, client.Discovery(), log.With("controller", "garbagecollector")),
			"replicaset":            replicaset.New(client, factory, log.With("controller", "replicaset")),
			"replicationcontroller": replicaset.NewForReplicationControllers(client, factory, log.With("controller", "replicationcontroller")),
			"deployment":            deployment.New(client, factory, log.With("controller", "deployment")),
			"endpoints":             endpoints.New(client, factory, log.With("controller", "endpoints")),
			"job":                   job.New(client, factory, log.With("controller", "job")),
			"cronjob":               cronjob.New(client, factory, log.With("controller", "cronjob")),
			"daemonset":             daemonset.New(client, factory, log.With("controller", "daemonset")),
			"statefulset":           statefulset.New(client, factory, log.With("controller", "statefulset")),
			"podgc":                 podgc.New(client, factory, log.With("controller", "podgc")),
			"servicelb":             servicelb.New(client, factory, log.With("controller", "servicelb")),
		}
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				log.Error("informer did not sync", "type", fmt.Sprint(typ))
				return
			}
		}
		var wg sync.WaitGroup
		for name, c := range controllers {
			wg.Add(1)
			go func() {
				defer wg.Done()
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
