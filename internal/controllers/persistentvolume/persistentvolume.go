// Package persistentvolume is the PersistentVolume controller: it binds
// claims to volumes (pre-bound either way, or the best Available match),
// hands claims of a class with a provisioner to that provisioner, keeps
// the phases of both (Pending/Bound/Lost, Available/Bound/Released/Failed)
// and reclaims volumes whose claim is gone, as upstream's
// persistent-volume-binder does. It also grows volumes that need no
// filesystem resize (expand.go).
package persistentvolume

import (
	"context"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// The annotations of upstream's binding protocol, which the scheduler and
// provisioners read and write too.
const (
	AnnBindCompleted          = "pv.kubernetes.io/bind-completed"
	AnnBoundByController      = "pv.kubernetes.io/bound-by-controller"
	AnnStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	AnnBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	AnnSelectedNode           = "volume.kubernetes.io/selected-node"
	AnnProvisionedBy          = "pv.kubernetes.io/provisioned-by"
	// NoProvisioner marks classes of pre-created (local) volumes only.
	NoProvisioner = "kubernetes.io/no-provisioner"
)

// resyncPending is how often a claim still waiting for a volume is looked
// at again, as upstream's periodic resync does: a new volume may fit it.
const resyncPending = 15 * time.Second

// Controller binds claims and volumes.
type Controller struct {
	client   kubernetes.Interface
	claims   listerscorev1.PersistentVolumeClaimLister
	volumes  listerscorev1.PersistentVolumeLister
	classes  listersstoragev1.StorageClassLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	events   record.EventBroadcaster
	recorder record.EventRecorder
	log      *slog.Logger
	// Clock stamps phase transitions; tests pass a fake one.
	Clock clock.PassiveClock
}

// Queue keys: claims and volumes share one queue, told apart by prefix.
const (
	claimPrefix  = "claim/"
	volumePrefix = "volume/"
)

// New builds the controller on the factory's claim, volume and class
// informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	scInf := factory.Storage().V1().StorageClasses()
	events, recorder := controllerutil.NewRecorder("persistentvolume-controller")
	c := &Controller{
		client: client, log: log, events: events, recorder: recorder, Clock: clock.RealClock{},
		claims:  pvcInf.Lister(),
		volumes: pvInf.Lister(),
		classes: scInf.Lister(),
		synced:  []cache.InformerSynced{pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced, scInf.Informer().HasSynced},
		queue:   controllerutil.NewQueue("persistentvolume-binder"),
	}
	_, _ = pvcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueClaim,
		UpdateFunc: func(_, o any) { c.enqueueClaim(o) },
		DeleteFunc: c.claimDeleted,
	})
	_, _ = pvInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueVolume,
		UpdateFunc: func(_, o any) { c.enqueueVolume(o) },
		DeleteFunc: c.volumeDeleted,
	})
	return c
}

func (c *Controller) enqueueClaim(o any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
		c.queue.Add(claimPrefix + key)
	}
}

// enqueueVolume queues the volume and the claim it names, so that a volume
// pre-bound by a provisioner or the scheduler is bound at once.
func (c *Controller) enqueueVolume(o any) {
	pv, ok := o.(*corev1.PersistentVolume)
	if !ok {
		return
	}
	c.queue.Add(volumePrefix + pv.Name)
	if ref := pv.Spec.ClaimRef; ref != nil {
		c.queue.Add(claimPrefix + ref.Namespace + "/" + ref.Name)
	}
}

// claimDeleted looks at the claim's volume, which is now Released.
func (c *Controller) claimDeleted(o any) {
	o = informerutil.Unwrap(o)
	if pvc, ok := o.(*corev1.PersistentVolumeClaim); ok && pvc.Spec.VolumeName != "" {
		c.queue.Add(volumePrefix + pvc.Spec.VolumeName)
	}
}

// volumeDeleted looks at the volume's claim, which is now Lost.
func (c *Controller) volumeDeleted(o any) {
	o = informerutil.Unwrap(o)
	if pv, ok := o.(*corev1.PersistentVolume); ok && pv.Spec.ClaimRef != nil {
		c.queue.Add(claimPrefix + pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name)
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 4, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	if name, ok := strings.CutPrefix(key, volumePrefix); ok {
		return c.syncVolumeByName(ctx, name)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(strings.TrimPrefix(key, claimPrefix))
	if err != nil {
		return nil
	}
	return c.syncClaimByName(ctx, ns, name)
}
