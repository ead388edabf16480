package manager

import (
	"fmt"
	"log/slog"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/skiff-dev/skiff/internal/controllers/admissionpolicystatus"
	"github.com/skiff-dev/skiff/internal/controllers/attachdetach"
	"github.com/skiff-dev/skiff/internal/controllers/bootstrapsigner"
	"github.com/skiff-dev/skiff/internal/controllers/clusterroleaggregation"
	"github.com/skiff-dev/skiff/internal/controllers/cronjob"
	"github.com/skiff-dev/skiff/internal/controllers/csicapacity"
	"github.com/skiff-dev/skiff/internal/controllers/csiprovisioner"
	"github.com/skiff-dev/skiff/internal/controllers/daemonset"
	"github.com/skiff-dev/skiff/internal/controllers/deployment"
	"github.com/skiff-dev/skiff/internal/controllers/disruption"
	"github.com/skiff-dev/skiff/internal/controllers/endpoints"
	"github.com/skiff-dev/skiff/internal/controllers/endpointslicemirroring"
	"github.com/skiff-dev/skiff/internal/controllers/garbagecollector"
	"github.com/skiff-dev/skiff/internal/controllers/job"
	"github.com/skiff-dev/skiff/internal/controllers/localpath"
	"github.com/skiff-dev/skiff/internal/controllers/namespace"
	"github.com/skiff-dev/skiff/internal/controllers/nodelifecycle"
	"github.com/skiff-dev/skiff/internal/controllers/persistentvolume"
	"github.com/skiff-dev/skiff/internal/controllers/podautoscaler"
	"github.com/skiff-dev/skiff/internal/controllers/podgc"
	"github.com/skiff-dev/skiff/internal/controllers/replicaset"
	"github.com/skiff-dev/skiff/internal/controllers/resourcequota"
	"github.com/skiff-dev/skiff/internal/controllers/rootcacert"
	"github.com/skiff-dev/skiff/internal/controllers/serviceaccount"
	"github.com/skiff-dev/skiff/internal/controllers/servicecidr"
	"github.com/skiff-dev/skiff/internal/controllers/servicelb"
	"github.com/skiff-dev/skiff/internal/controllers/statefulset"
	"github.com/skiff-dev/skiff/internal/controllers/volumeprotection"
)

// deps is what a controller is built from: the clients of its identity,
// the manager's shared informers (which use the manager's own identity)
// and the manager's configuration.
type deps struct {
	identity
	// ids gives the identities of further ServiceAccounts, for controllers
	// doing the work of more than one upstream controller.
	ids     identities
	factory informers.SharedInformerFactory
	cfg     Config
	log     *slog.Logger
}

// registration is one controller: the ServiceAccount in kube-system it
// acts as (upstream's name, so that upstream's system:controller:<sa>
// role applies) and how it is built. build returns nil to leave the
// controller off.
type registration struct {
	name  string
	sa    string
	build func(d deps) (Controller, error)
}

// registrations are every controller the manager runs.
var registrations = []registration{
	{"nodelifecycle", "node-controller", func(d deps) (Controller, error) {
		return nodelifecycle.New(d.client, d.factory, nodelifecycle.Config{ClusterCIDR: d.cfg.ClusterCIDR}, d.log)
	}},
	{"namespace", "namespace-controller", func(d deps) (Controller, error) {
		dyn, err := dynamic.NewForConfig(d.config)
		if err != nil {
			return nil, err
		}
		return namespace.New(d.client, dyn, d.factory, d.log), nil
	}},
	{"serviceaccount", "service-account-controller", informerController(serviceaccount.New)},
	{"garbagecollector", "generic-garbage-collector", func(d deps) (Controller, error) {
		meta, err := metadata.NewForConfig(d.config)
		if err != nil {
			return nil, err
		}
		return garbagecollector.New(meta, d.client.Discovery(), d.log), nil
	}},
	{"replicaset", "replicaset-controller", informerController(replicaset.New)},
	{"replicationcontroller", "replication-controller", informerController(replicaset.NewForReplicationControllers)},
	{"deployment", "deployment-controller", informerController(deployment.New)},
	{"endpoints", "endpoint-controller", func(d deps) (Controller, error) {
		slices, err := d.ids.as("endpointslice-controller")
		if err != nil {
			return nil, err
		}
		return endpoints.New(withDiscoveryV1(d.client, slices.client), d.factory, d.log), nil
	}},
	{"endpointslicemirroring", "endpointslicemirroring-controller", informerController(endpointslicemirroring.New)},
	{"job", "job-controller", func(d deps) (Controller, error) {
		ttl, err := d.ids.as("ttl-after-finished-controller")
		if err != nil {
			return nil, err
		}
		return job.New(withJobDeletes(d.client, ttl.client), d.factory, d.log), nil
	}},
	{"cronjob", "cronjob-controller", informerController(cronjob.New)},
	{"daemonset", "daemon-set-controller", informerController(daemonset.New)},
	{"statefulset", "statefulset-controller", informerController(statefulset.New)},
	{"disruption", "disruption-controller", func(d deps) (Controller, error) {
		c := disruption.New(d.client, d.factory, d.log)
		return c, c.UseScaleSubresource(d.config, d.client.Discovery())
	}},
	{"podgc", "pod-garbage-collector", informerController(podgc.New)},
	{"horizontalpodautoscaling", "horizontal-pod-autoscaler", func(d deps) (Controller, error) {
		return podautoscaler.NewForConfig(d.config, d.client, d.factory, d.log)
	}},
	{"resourcequota", "resourcequota-controller", func(d deps) (Controller, error) {
		meta, err := metadata.NewForConfig(d.config)
		if err != nil {
			return nil, err
		}
		c := resourcequota.New(d.client, d.factory, d.log)
		c.UseMetadata(meta, d.client.Discovery())
		return c, nil
	}},
	// Skiff's own: its role is system:controller:skiff-servicelb.
	{"servicelb", "skiff-servicelb", informerController(servicelb.New)},
	{"bootstrapsigner", "bootstrap-signer", func(d deps) (Controller, error) {
		return bootstrapsigner.New(d.client, d.log), nil
	}},
	{"clusterrole-aggregation", "clusterrole-aggregation-controller", informerController(clusterroleaggregation.New)},
	{"servicecidr", "service-cidrs-controller", informerController(servicecidr.New)},
	{"persistentvolume-binder", "persistent-volume-binder", informerController(persistentvolume.New)},
	{"persistentvolume-expander", "expand-controller", informerController(persistentvolume.NewExpander)},
	{"pvc-protection", "pvc-protection-controller", informerController(volumeprotection.NewPVCProtection)},
	{"pv-protection", "pv-protection-controller", informerController(volumeprotection.NewPVProtection)},
	{"attachdetach", "attachdetach-controller", informerController(attachdetach.New)},
	// Skiff's own: its role is system:controller:skiff-local-path-provisioner.
	{"local-path-provisioner", "skiff-local-path-provisioner", informerController(localpath.New)},
	// Skiff's own: its role is system:controller:skiff-csi-provisioner.
	{"csi-provisioner", "skiff-csi-provisioner", informerController(csiprovisioner.New)},
	// The provisioner's capacity tracking, under the same identity (one
	// upstream sidecar does both).
	{"csi-storage-capacity", "skiff-csi-provisioner", informerController(csicapacity.New)},
	{"validatingadmissionpolicy-status", "validatingadmissionpolicy-status-controller", informerController(admissionpolicystatus.New)},
	{"root-ca-cert-publisher", "root-ca-cert-publisher", func(d deps) (Controller, error) {
		if len(d.cfg.RootCA) == 0 {
			return nil, nil
		}
		// Its informer lists and watches as the shared informers do.
		return rootcacert.New(d.client, d.ids.own.client, d.factory, d.cfg.RootCA, d.log), nil
	}},
}

// informerController adapts the usual constructor: a client, the shared
// informers and a logger.
func informerController[C Controller](newFn func(kubernetes.Interface, informers.SharedInformerFactory, *slog.Logger) C) func(deps) (Controller, error) {
	return func(d deps) (Controller, error) { return newFn(d.client, d.factory, d.log), nil }
}

// buildControllers builds every registered controller, each with the
// identity of its ServiceAccount.
func buildControllers(ids identities, factory informers.SharedInformerFactory, cfg Config) (map[string]Controller, error) {
	out := make(map[string]Controller, len(registrations))
	for _, r := range registrations {
		id, err := ids.as(r.sa)
		if err != nil {
			return nil, fmt.Errorf("%s controller: %w", r.name, err)
		}
		c, err := r.build(deps{identity: id, ids: ids, factory: factory, cfg: cfg, log: cfg.Logger.With("controller", r.name)})
		if err != nil {
			return nil, fmt.Errorf("%s controller: %w", r.name, err)
		}
		if c != nil {
			out[r.name] = c
		}
	}
	return out, nil
}
