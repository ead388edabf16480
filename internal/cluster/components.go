package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/controllers/manager"
	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/leaderelect"
	"github.com/skiff-dev/skiff/internal/metricshttp"
	"github.com/skiff-dev/skiff/internal/proxy"
	"github.com/skiff-dev/skiff/internal/scheduler"
)

// SchedulerConfig configures `skiff scheduler`.
type SchedulerConfig struct {
	Kubeconfig     string
	MetricsAddress string
	LeaderElect    bool
	QPS            float32
	Logger         *slog.Logger
}

// RunScheduler runs the scheduler against a remote API server until ctx ends.
func RunScheduler(ctx context.Context, cfg SchedulerConfig) error {
	// A panic in one loop is logged and counted, not fatal.
	crash.InstallClientGoHandler()
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.QPS = cfg.QPS
	if cfg.QPS > 0 {
		rc.Burst = int(2 * cfg.QPS)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	sched := scheduler.New(scheduler.Config{Client: client, Logger: cfg.Logger})
	defer sched.Close()
	if cfg.MetricsAddress != "" {
		srv := &http.Server{Addr: cfg.MetricsAddress, Handler: metricshttp.Handler(sched.Registry()), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Logger.Error("metrics server", "err", err)
			}
		}()
		defer srv.Close()
	}
	if !cfg.LeaderElect {
		return sched.Run(ctx)
	}
	return leaderelect.Run(ctx, client, "kube-scheduler", cfg.Logger, func(ctx context.Context) {
		if err := sched.Run(ctx); err != nil {
			cfg.Logger.Error("scheduler stopped", "err", err)
		}
	})
}

// ControllerManagerConfig configures `skiff controller-manager`.
type ControllerManagerConfig struct {
	Kubeconfig  string
	LeaderElect bool
	ClusterCIDR string
	// UseServiceAccountCredentials runs each controller as its own
	// ServiceAccount in kube-system (--use-service-account-credentials).
	UseServiceAccountCredentials bool
	Logger                       *slog.Logger
}

// RunControllerManager runs the controllers against a remote API server
// until ctx ends.
func RunControllerManager(ctx context.Context, cfg ControllerManagerConfig) error {
	// A panic in one loop is logged and counted, not fatal.
	crash.InstallClientGoHandler()
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	// The CA published as kube-root-ca.crt is the one the kubeconfig
	// trusts (inline or as a file); without one that controller stays off.
	rootCA := rc.CAData
	if len(rootCA) == 0 && rc.CAFile != "" {
		if rootCA, err = os.ReadFile(rc.CAFile); err != nil {
			return fmt.Errorf("read kubeconfig CA: %w", err)
		}
	}
	return manager.Run(ctx, manager.Config{RESTConfig: rc, LeaderElect: cfg.LeaderElect, ClusterCIDR: cfg.ClusterCIDR,
		RootCA: rootCA, UseServiceAccountCredentials: cfg.UseServiceAccountCredentials, Logger: cfg.Logger})
}

// RunProxy runs the service proxy alone (`skiff proxy`).
func RunProxy(ctx context.Context, kubeconfig, nodeName, clusterCIDR string, log *slog.Logger) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("proxy: load kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	if nodeName == "" {
		if nodeName, err = os.Hostname(); err != nil {
			return err
		}
	}
	p, err := proxy.New(proxy.Config{Client: client, NodeName: strings.ToLower(nodeName), ClusterCIDR: clusterCIDR, Logger: log})
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
