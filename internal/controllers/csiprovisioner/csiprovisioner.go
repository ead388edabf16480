// Package csiprovisioner provisions volumes for StorageClasses whose
// provisioner is a CSI driver, as upstream's external-provisioner sidecar
// does, so that a driver's node and controller plugins are all a user
// deploys: CreateVolume and DeleteVolume go to the driver's controller
// service through a kubelet on which the driver is registered (the API
// server's nodes/proxy, then the kubelet's /csi/{driver}/controller/...).
//
// The persistentvolume controller hands it claims (the
// volume.kubernetes.io/storage-provisioner annotation) and binds the
// volumes it creates; it deletes Released volumes it provisioned whose
// reclaim policy is Delete. A claim whose dataSource is another claim is
// a clone (clone.go): CreateVolume gets the source volume as its content
// source. Drivers whose CSIDriver object is annotated
// skiff.dev/csi-provisioner: external are left to their own sidecar.
package csiprovisioner

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

const (
	// ModeAnnotation on a CSIDriver object set to ModeExternal leaves the
	// driver's volumes to an external-provisioner sidecar.
	ModeAnnotation = "skiff.dev/csi-provisioner"
	ModeExternal   = "external"

	// Finalizer keeps a provisioned volume of reclaim policy Delete until
	// its storage is deleted: upstream's, so either provisioner honours it.
	Finalizer = "external-provisioner.volume.kubernetes.io/finalizer"

	// The binding protocol's annotations (see the persistentvolume controller).
	annStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	annBetaProvisioner    = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode       = "volume.kubernetes.io/selected-node"
	annProvisionedBy      = "pv.kubernetes.io/provisioned-by"

	// provisionerIDKey is the volume attribute upstream stamps on the
	// volumes it provisions.
	provisionerIDKey = "storage.kubernetes.io/csiProvisionerIdentity"
)

// Controller is the built-in CSI provisioner.
type Controller struct {
	client   kubernetes.Interface
	claims   listerscorev1.PersistentVolumeClaimLister
	volumes  listerscorev1.PersistentVolumeLister
	classes  listersstoragev1.StorageClassLister
	nodes    listerscorev1.NodeLister
	csiNodes listersstoragev1.CSINodeLister
	drivers  listersstoragev1.CSIDriverLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	events   record.EventBroadcaster
	recorder record.EventRecorder
	log      *slog.Logger
	// csi reaches the drivers' controller services; tests replace it.
	csi ControllerService
	// identity is stamped into the volumes' attributes, as upstream's
	// <start ms>-<random>-<driver>.
	identity string
}

// Queue keys: claims to provision, volumes to delete, clone sources
// whose CloneFinalizer may go.
const (
	claimPrefix   = "claim/"
	volumePrefix  = "volume/"
	protectPrefix = "protect/"
)

// New builds the provisioner on the factory's informers; it calls the
// drivers through the API server's node proxy.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	scInf := factory.Storage().V1().StorageClasses()
	nodeInf := factory.Core().V1().Nodes()
	csiNodeInf := factory.Storage().V1().CSINodes()
	driverInf := factory.Storage().V1().CSIDrivers()
	events, recorder := controllerutil.NewRecorder("skiff-csi-provisioner")
	c := &Controller{
		client: client, log: log, events: events, recorder: recorder,
		claims:   pvcInf.Lister(),
		volumes:  pvInf.Lister(),
		classes:  scInf.Lister(),
		nodes:    nodeInf.Lister(),
		csiNodes: csiNodeInf.Lister(),
		drivers:  driverInf.Lister(),
		synced: []cache.InformerSynced{pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced, scInf.Informer().HasSynced,
			nodeInf.Informer().HasSynced, csiNodeInf.Informer().HasSynced, driverInf.Informer().HasSynced},
		queue:    controllerutil.NewQueue("csi-provisioner"),
		csi:      NodeProxy{REST: client.CoreV1().RESTClient()},
		identity: fmt.Sprintf("%d-%d", time.Now().UnixMilli(), rand.IntN(10000)),
	}
	_, _ = pvcInf.Informer().AddEventHandler(informerutil.OnAnyChange(c.enqueueClaim))
	_, _ = pvInf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(c.enqueueVolume))
	// A driver registering on a node, or its CSIDriver object changing,
	// may make waiting claims and volumes ours.
	_, _ = csiNodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAll() },
		UpdateFunc: func(_, _ any) { c.enqueueAll() },
	})
	_, _ = driverInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAll() },
		UpdateFunc: func(_, _ any) { c.enqueueAll() },
		DeleteFunc: func(any) { c.enqueueAll() },
	})
	return c
}

// claimProvisioner is the provisioner the binder named for the claim.
func claimProvisioner(pvc *corev1.PersistentVolumeClaim) string {
	if p := pvc.Annotations[annStorageProvisioner]; p != "" {
		return p
	}
	return pvc.Annotations[annBetaProvisioner]
}

// enqueueClaim queues a claim to provision, and the claims whose cloning
// protection it may end: itself, or the source it clones.
func (c *Controller) enqueueClaim(o any) {
	o = informerutil.Unwrap(o)
	pvc, ok := o.(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	if pvc.Spec.VolumeName == "" && claimProvisioner(pvc) != "" {
		c.queue.Add(claimPrefix + pvc.Namespace + "/" + pvc.Name)
	}
	if slices.Contains(pvc.Finalizers, CloneFinalizer) {
		c.queue.Add(protectPrefix + pvc.Namespace + "/" + pvc.Name)
	}
	if from, ok := cloneSourceName(pvc); ok {
		c.queue.Add(protectPrefix + pvc.Namespace + "/" + from)
	}
}

func (c *Controller) enqueueVolume(o any) {
	pv, ok := o.(*corev1.PersistentVolume)
	if ok && pv.Annotations[annProvisionedBy] != "" && pv.Spec.CSI != nil && pv.Status.Phase == corev1.VolumeReleased {
		c.queue.Add(volumePrefix + pv.Name)
	}
}

// enqueueAll looks at every waiting claim and released volume again.
func (c *Controller) enqueueAll() {
	claims, _ := c.claims.List(labels.Everything())
	for _, pvc := range claims {
		c.enqueueClaim(pvc)
	}
	volumes, _ := c.volumes.List(labels.Everything())
	for _, pv := range volumes {
		c.enqueueVolume(pv)
	}
}

// Run provisions and deletes until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	if name, ok := strings.CutPrefix(key, volumePrefix); ok {
		return c.syncVolume(ctx, name)
	}
	if rest, ok := strings.CutPrefix(key, protectPrefix); ok {
		ns, name, err := cache.SplitMetaNamespaceKey(rest)
		if err != nil {
			return nil
		}
		return c.syncProtection(ctx, ns, name)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(strings.TrimPrefix(key, claimPrefix))
	if err != nil {
		return nil
	}
	return c.syncClaim(ctx, ns, name)
}

// driverNodes returns, by node name, the CSINode entries of the nodes on
// which driver is registered. It is empty for a driver that is not ours:
// one whose CSIDriver says an external provisioner serves it, or a name
// no node knows (not a CSI driver, or not registered yet).
func (c *Controller) driverNodes(driver string) (map[string]storagev1.CSINodeDriver, error) {
	d, err := c.drivers.Get(driver)
	switch {
	case err == nil:
		if d.Annotations[ModeAnnotation] == ModeExternal {
			return nil, nil
		}
	case !apierrors.IsNotFound(err):
		return nil, err
	}
	csiNodes, err := c.csiNodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := map[string]storagev1.CSINodeDriver{}
	for _, cn := range csiNodes {
		for _, d := range cn.Spec.Drivers {
			if d.Name == driver {
				out[cn.Name] = d
			}
		}
	}
	return out, nil
}
