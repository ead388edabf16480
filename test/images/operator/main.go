// Command operator is the end-to-end suite's operator: a controller built
// with controller-runtime, as most operators are, that reconciles the
// e2e.skiff.dev/v1 Widget custom resource (reconciler.go). It runs in a pod
// with the in-cluster configuration, its informers' cache and no leader
// election, and proves that a real controller-runtime manager works against
// Skiff: discovery of a CRD, list/watch of a custom resource, the status
// subresource, owner references and events.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func main() {
	probeAddr := flag.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.Parse()
	ctrl.SetLogger(zap.New())
	if err := run(*probeAddr); err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

func run(probeAddr string) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := addToScheme(scheme); err != nil {
		return err
	}
	// GetConfig is the in-cluster configuration in a pod (the mounted
	// ServiceAccount token and CA).
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		LeaderElection:         false,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: probeAddr,
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	r := &widgetReconciler{client: mgr.GetClient(), scheme: scheme, recorder: mgr.GetEventRecorder("widget-operator")}
	if err := r.setupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready once the informers have synced: the test waits for it.
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informers not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
