// Package attachdetach is the attach/detach controller for CSI volumes, as
// upstream's of that name: for every volume a scheduled pod uses through a
// claim bound to a CSI PersistentVolume whose driver needs attaching, it
// creates a VolumeAttachment for the pod's node, and deletes it once no pod
// there uses the volume and the node has unmounted it (or a timeout
// passed). The driver's external-attacher does the ControllerPublishVolume
// and sets the attachment's status; this controller reports attached
// volumes in node.status.volumesAttached, where the kubelet waits for them.
package attachdetach

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// maxWaitForUnmount is how long a volume no pod wants any more stays
// attached while its node still reports it in use; then it is detached
// anyway, as upstream's reconciler does.
const maxWaitForUnmount = 6 * time.Minute

// annControllerManaged is the node annotation by which a kubelet leaves
// attaching to this controller. Upstream manages only nodes saying "true";
// Skiff's kubelet does not set it, so only an explicit "false" (a kubelet
// attaching by itself) opts a node out.
const annControllerManaged = "volumes.kubernetes.io/controller-managed-attach-detach"

// Index names on the shared informers; prefixed so no other controller's
// index of the same name conflicts.
const (
	podsByNode       = "attachdetach/node"
	podsByClaim      = "attachdetach/claim"
	attachmentByNode = "attachdetach/node"
	attachmentByPV   = "attachdetach/pv"
)

// Controller creates and deletes VolumeAttachments. Its queue is keyed by
// node name: each sync reconciles all of one node's attachments.
type Controller struct {
	client      kubernetes.Interface
	pods        cache.Indexer
	attachments cache.Indexer
	nodes       listerscorev1.NodeLister
	claims      listerscorev1.PersistentVolumeClaimLister
	volumes     listerscorev1.PersistentVolumeLister
	drivers     listersstoragev1.CSIDriverLister
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
	events      record.EventBroadcaster
	recorder    record.EventRecorder
	clock       clock.PassiveClock
	log         *slog.Logger

	mu sync.Mutex
	// detachWanted is when each attachment (by name) was first found
	// unwanted while its node still used the volume.
	detachWanted map[string]time.Time
}

// New builds the controller on the factory's pod, node, claim, volume,
// CSIDriver and VolumeAttachment informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	driverInf := factory.Storage().V1().CSIDrivers()
	vaInf := factory.Storage().V1().VolumeAttachments()
	events, recorder := controllerutil.NewRecorder("attachdetach-controller")
	c := &Controller{
		client: client, log: log, events: events, recorder: recorder,
		pods:         podInf.Informer().GetIndexer(),
		attachments:  vaInf.Informer().GetIndexer(),
		nodes:        nodeInf.Lister(),
		claims:       pvcInf.Lister(),
		volumes:      pvInf.Lister(),
		drivers:      driverInf.Lister(),
		queue:        controllerutil.NewQueue("attachdetach"),
		clock:        clock.RealClock{},
		detachWanted: map[string]time.Time{},
		synced: []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced,
			pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced,
			driverInf.Informer().HasSynced, vaInf.Informer().HasSynced},
	}
	// The informers have not started yet, so adding indexes cannot fail
	// but for a name clash, which the prefixes rule out.
	_ = podInf.Informer().AddIndexers(cache.Indexers{podsByNode: indexPodByNode, podsByClaim: indexPodByClaim})
	_ = vaInf.Informer().AddIndexers(cache.Indexers{attachmentByNode: indexAttachmentByNode, attachmentByPV: indexAttachmentByPV})

	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podChanged,
		UpdateFunc: func(old, cur any) { c.podChanged(old); c.podChanged(cur) },
		DeleteFunc: c.podChanged,
	})
	_, _ = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.nodeChanged,
		UpdateFunc: c.nodeUpdated,
		DeleteFunc: c.nodeChanged,
	})
	_, _ = pvcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.claimChanged,
		UpdateFunc: func(_, cur any) { c.claimChanged(cur) },
	})
	_, _ = pvInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.volumeChanged,
		UpdateFunc: func(_, cur any) { c.volumeChanged(cur) },
	})
	_, _ = driverInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAllNodes() },
		UpdateFunc: func(any, any) { c.enqueueAllNodes() },
		DeleteFunc: func(any) { c.enqueueAllNodes() },
	})
	_, _ = vaInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.attachmentChanged,
		UpdateFunc: c.attachmentUpdated,
		DeleteFunc: c.attachmentDeleted,
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

func indexPodByNode(o any) ([]string, error) {
	if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

// indexPodByClaim indexes pods by "<namespace>/<claim>" of each claim they
// use, generic ephemeral volumes' claims included.
func indexPodByClaim(o any) ([]string, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, v := range p.Spec.Volumes {
		if name := claimName(p, &v); name != "" {
			keys = append(keys, p.Namespace+"/"+name)
		}
	}
	return keys, nil
}

func indexAttachmentByNode(o any) ([]string, error) {
	if va, ok := o.(*storagev1.VolumeAttachment); ok {
		return []string{va.Spec.NodeName}, nil
	}
	return nil, nil
}

func indexAttachmentByPV(o any) ([]string, error) {
	if va, ok := o.(*storagev1.VolumeAttachment); ok && va.Spec.Source.PersistentVolumeName != nil {
		return []string{*va.Spec.Source.PersistentVolumeName}, nil
	}
	return nil, nil
}
