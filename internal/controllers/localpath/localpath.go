// Package localpath is the skiff.dev/local-path provisioner: it keeps the
// default StorageClass local-path, makes a hostPath volume on the node the
// scheduler chose for each claim of that class, and deletes a released
// volume's directory through a helper pod on its node (the server never
// touches node filesystems) before deleting the volume.
package localpath

import (
	"context"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
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
	// ProvisionerName is the provisioner of the classes this controller serves.
	ProvisionerName = "skiff.dev/local-path"
	// ClassName is the default StorageClass it keeps.
	ClassName = "local-path"
	// DirAnnotation on a node names the directory its volumes live in.
	DirAnnotation = "skiff.dev/local-path-dir"
	// DefaultDir is used for nodes without DirAnnotation.
	DefaultDir = "/var/lib/skiff/storage"
	// nodeAnnotation on a volume records its node.
	nodeAnnotation = "skiff.dev/local-path-node"
	// helperLabel marks the helper pods, valued with the volume's name.
	helperLabel = "skiff.dev/local-path-volume"
	// HelperImage is the image every Skiff node imports.
	HelperImage = "docker.io/library/busybox:latest"
	// HelperNamespace is where helper pods run.
	HelperNamespace = "kube-system"

	// The binding protocol's annotations (see the persistentvolume controller).
	annStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	annBetaProvisioner    = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode       = "volume.kubernetes.io/selected-node"
	annProvisionedBy      = "pv.kubernetes.io/provisioned-by"
	annDefaultClass       = "storageclass.kubernetes.io/is-default-class"
)

// Controller is the provisioner.
type Controller struct {
	client   kubernetes.Interface
	claims   listerscorev1.PersistentVolumeClaimLister
	volumes  listerscorev1.PersistentVolumeLister
	classes  listersstoragev1.StorageClassLister
	nodes    listerscorev1.NodeLister
	pods     listerscorev1.PodLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	events   record.EventBroadcaster
	recorder record.EventRecorder
	log      *slog.Logger
}

// Queue keys: claims to provision, volumes to delete.
const (
	claimPrefix  = "claim/"
	volumePrefix = "volume/"
)

// New builds the provisioner on the factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	scInf := factory.Storage().V1().StorageClasses()
	nodeInf := factory.Core().V1().Nodes()
	podInf := factory.Core().V1().Pods()
	events, recorder := controllerutil.NewRecorder(ProvisionerName + "_skiff")
	c := &Controller{
		client: client, log: log, events: events, recorder: recorder,
		claims:  pvcInf.Lister(),
		volumes: pvInf.Lister(),
		classes: scInf.Lister(),
		nodes:   nodeInf.Lister(),
		pods:    podInf.Lister(),
		synced: []cache.InformerSynced{pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced,
			scInf.Informer().HasSynced, nodeInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue: controllerutil.NewQueue("local-path-provisioner"),
	}
	_, _ = pvcInf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(c.enqueueClaim))
	_, _ = pvInf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(c.enqueueVolume))
	// A helper pod's progress wakes its volume.
	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { c.enqueueHelper(o) },
		DeleteFunc: c.enqueueHelper,
	})
	return c
}

func (c *Controller) enqueueClaim(o any) {
	pvc, ok := o.(*corev1.PersistentVolumeClaim)
	if ok && pvc.Spec.VolumeName == "" && pvc.Annotations[annStorageProvisioner] == ProvisionerName {
		c.queue.Add(claimPrefix + pvc.Namespace + "/" + pvc.Name)
	}
}

func (c *Controller) enqueueVolume(o any) {
	pv, ok := o.(*corev1.PersistentVolume)
	if ok && pv.Annotations[annProvisionedBy] == ProvisionerName && pv.Status.Phase == corev1.VolumeReleased {
		c.queue.Add(volumePrefix + pv.Name)
	}
}

func (c *Controller) enqueueHelper(o any) {
	o = informerutil.Unwrap(o)
	if p, ok := o.(*corev1.Pod); ok && p.Namespace == HelperNamespace && p.Labels[helperLabel] != "" {
		c.queue.Add(volumePrefix + p.Labels[helperLabel])
	}
}

// Run ensures the default class, then provisions and deletes until ctx
// ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return
	}
	go c.ensureClassUntilDone(ctx) // ends with ctx
	controllerutil.RunWorkers(ctx, c.queue, 2, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	if name, ok := strings.CutPrefix(key, volumePrefix); ok {
		return c.syncVolume(ctx, name)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(strings.TrimPrefix(key, claimPrefix))
	if err != nil {
		return nil
	}
	return c.syncClaim(ctx, ns, name)
}
