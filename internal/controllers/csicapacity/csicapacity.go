// Package csicapacity publishes the storage capacity of CSI drivers served
// by Skiff's built-in provisioner (internal/controllers/csiprovisioner),
// as upstream's external-provisioner does with --enable-capacity: for each
// CSIDriver with spec.storageCapacity, each of its StorageClasses that wait
// for their first consumer (the only ones the scheduler reads it for) and each
// topology segment of the nodes it is registered on, one
// CSIStorageCapacity object in kube-system carries what the driver's
// GetCapacity answers for that segment. The scheduler reads them to place
// pods whose claims wait for their first consumer.
//
// GetCapacity goes to the driver's controller service through a kubelet
// of the segment (the API server's nodes/proxy). Drivers without topology
// get no objects, as upstream; drivers annotated
// skiff.dev/csi-provisioner: external are left to their own sidecar.
// Drivers do not say when their capacity changes, so every driver is
// asked again each Interval.
package csicapacity

import (
	"context"
	"log/slog"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/controllers/csiprovisioner"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

const (
	// Namespace holds the published objects.
	Namespace = "kube-system"
	// DriverLabel and ManagedByLabel are upstream's labels of the objects
	// a provisioner publishes; ManagedBy tells Skiff's from a sidecar's.
	DriverLabel    = "csi.storage.k8s.io/drivername"
	ManagedByLabel = "csi.storage.k8s.io/managed-by"
	ManagedBy      = "skiff-csi-provisioner"
	// generateName is upstream's prefix of the objects' names.
	generateName = "csisc-"
	// DefaultInterval is upstream's default --capacity-poll-interval.
	DefaultInterval = time.Minute
)

// CapacityService calls GetCapacity on a CSI driver's controller service
// through a node. Errors from the driver itself are gRPC status errors;
// any other error means the call did not reach the driver there, so
// another node of the segment may be tried. csiprovisioner.NodeProxy is
// one.
type CapacityService interface {
	GetCapacity(ctx context.Context, node, driver string, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error)
}

// Controller publishes CSIStorageCapacity objects; the queue's keys are
// driver names.
type Controller struct {
	client     kubernetes.Interface
	drivers    listersstoragev1.CSIDriverLister
	classes    listersstoragev1.StorageClassLister
	csiNodes   listersstoragev1.CSINodeLister
	nodes      listerscorev1.NodeLister
	capacities listersstoragev1.CSIStorageCapacityLister
	synced     []cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[string]
	log        *slog.Logger
	// csi reaches the drivers' controller services; tests replace it.
	csi   CapacityService
	clock clock.WithTicker
	// Interval is how often every driver is asked again.
	Interval time.Duration
}

// New builds the controller on the factory's informers; it calls the
// drivers through the API server's node proxy.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	driverInf := factory.Storage().V1().CSIDrivers()
	scInf := factory.Storage().V1().StorageClasses()
	csiNodeInf := factory.Storage().V1().CSINodes()
	nodeInf := factory.Core().V1().Nodes()
	capInf := factory.Storage().V1().CSIStorageCapacities()
	c := &Controller{
		client: client, log: log,
		drivers:    driverInf.Lister(),
		classes:    scInf.Lister(),
		csiNodes:   csiNodeInf.Lister(),
		nodes:      nodeInf.Lister(),
		capacities: capInf.Lister(),
		synced: []cache.InformerSynced{driverInf.Informer().HasSynced, scInf.Informer().HasSynced,
			csiNodeInf.Informer().HasSynced, nodeInf.Informer().HasSynced, capInf.Informer().HasSynced},
		queue:    controllerutil.NewQueue("csi-storage-capacity"),
		csi:      csiprovisioner.NodeProxy{REST: client.CoreV1().RESTClient()},
		clock:    clock.RealClock{},
		Interval: DefaultInterval,
	}
	_, _ = driverInf.Informer().AddEventHandler(informerutil.OnAnyChange(c.enqueueDriver))
	_, _ = scInf.Informer().AddEventHandler(informerutil.OnAnyChange(c.enqueueClass))
	// A driver registering or leaving a node, or its topology keys
	// changing, changes its segments.
	_, _ = csiNodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueCSINode,
		UpdateFunc: func(old, o any) { c.enqueueCSINode(old); c.enqueueCSINode(o) },
		DeleteFunc: c.enqueueCSINode,
	})
	// A node's labels are its segments' values; its status changes often
	// and matters not.
	_, _ = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueNode,
		UpdateFunc: func(old, o any) {
			on, ok1 := old.(*corev1.Node)
			nn, ok2 := o.(*corev1.Node)
			if ok1 && ok2 && labels.Equals(on.Labels, nn.Labels) {
				return
			}
			c.enqueueNode(o)
		},
		DeleteFunc: c.enqueueNode,
	})
	// Someone else deleting a published object: publish it again.
	_, _ = capInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: c.enqueueCapacity,
	})
	return c
}

func (c *Controller) enqueueDriver(o any) {
	if d, ok := informerutil.Unwrap(o).(*storagev1.CSIDriver); ok {
		c.queue.Add(d.Name)
	}
}

func (c *Controller) enqueueClass(o any) {
	if sc, ok := informerutil.Unwrap(o).(*storagev1.StorageClass); ok && sc.Provisioner != "" {
		c.queue.Add(sc.Provisioner)
	}
}

func (c *Controller) enqueueCSINode(o any) {
	if cn, ok := informerutil.Unwrap(o).(*storagev1.CSINode); ok {
		for _, d := range cn.Spec.Drivers {
			c.queue.Add(d.Name)
		}
	}
}

// enqueueNode enqueues the drivers registered on the node (its CSINode
// has the node's name).
func (c *Controller) enqueueNode(o any) {
	n, ok := informerutil.Unwrap(o).(*corev1.Node)
	if !ok {
		return
	}
	if cn, err := c.csiNodes.Get(n.Name); err == nil {
		c.enqueueCSINode(cn)
	}
}

func (c *Controller) enqueueCapacity(o any) {
	if csc, ok := informerutil.Unwrap(o).(*storagev1.CSIStorageCapacity); ok && csc.Labels[ManagedByLabel] == ManagedBy {
		c.queue.Add(csc.Labels[DriverLabel])
	}
}

// enqueueAll enqueues every CSIDriver and every driver with published
// objects (whose CSIDriver may be gone).
func (c *Controller) enqueueAll() {
	drivers, _ := c.drivers.List(labels.Everything())
	for _, d := range drivers {
		c.queue.Add(d.Name)
	}
	published, _ := c.capacities.CSIStorageCapacities(Namespace).List(labels.SelectorFromSet(labels.Set{ManagedByLabel: ManagedBy}))
	for _, csc := range published {
		if d := csc.Labels[DriverLabel]; d != "" {
			c.queue.Add(d)
		}
	}
}

// Run publishes until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return
	}
	go c.poll(ctx)
	controllerutil.RunWorkers(ctx, c.queue, 1, c.sync, c.log)
}

// poll enqueues every driver each Interval.
func (c *Controller) poll(ctx context.Context) {
	t := c.clock.NewTicker(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			c.enqueueAll()
		}
	}
}
