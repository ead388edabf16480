package persistentvolume

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// Expander grows bound claims whose request went up, for volumes that are
// plain directories (hostPath, local): there is no device or filesystem to
// resize, so growing is writing the new size on the volume and the claim.
// Other volumes are left to their driver's resizer. Admission
// (PersistentVolumeClaimResize) already checked that the class allows it.
type Expander struct {
	client   kubernetes.Interface
	claims   listerscorev1.PersistentVolumeClaimLister
	volumes  listerscorev1.PersistentVolumeLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	events   record.EventBroadcaster
	recorder record.EventRecorder
	log      *slog.Logger
}

const reasonVolumeResizeSuccessful = "VolumeResizeSuccessful"

// NewExpander builds the expander on the factory's claim and volume
// informers.
func NewExpander(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Expander {
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	pvInf := factory.Core().V1().PersistentVolumes()
	events, recorder := controllerutil.NewRecorder("volume_expand")
	e := &Expander{
		client: client, log: log, events: events, recorder: recorder,
		claims:  pvcInf.Lister(),
		volumes: pvInf.Lister(),
		synced:  []cache.InformerSynced{pvcInf.Informer().HasSynced, pvInf.Informer().HasSynced},
		queue:   controllerutil.NewQueue("volume-expand"),
	}
	enqueue := func(o any) {
		if pvc, ok := o.(*corev1.PersistentVolumeClaim); ok && needsGrowth(pvc) {
			if key, err := cache.MetaNamespaceKeyFunc(pvc); err == nil {
				e.queue.Add(key)
			}
		}
	}
	_, _ = pvcInf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(enqueue))
	return e
}

// needsGrowth reports whether a bound claim asks for more than it has.
func needsGrowth(pvc *corev1.PersistentVolumeClaim) bool {
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return false
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have, ok := pvc.Status.Capacity[corev1.ResourceStorage]
	return ok && want.Cmp(have) > 0
}

// Run grows claims until ctx ends.
func (e *Expander) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, e.events, e.client)
	controllerutil.RunSynced(ctx, e.synced, e.queue, 1, e.sync, e.log)
}

func (e *Expander) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := e.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && !needsGrowth(pvc)) {
		return nil
	}
	if err != nil {
		return err
	}
	pv, err := e.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pv.Spec.HostPath == nil && pv.Spec.Local == nil {
		return nil
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if have := pv.Spec.Capacity[corev1.ResourceStorage]; have.Cmp(want) < 0 {
		pv = pv.DeepCopy()
		pv.Spec.Capacity[corev1.ResourceStorage] = want
		if _, err := e.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("growing volume %s: %w", pv.Name, err)
		}
	}
	pvc = pvc.DeepCopy()
	pvc.Status.Capacity[corev1.ResourceStorage] = want
	pvc.Status.Conditions = nil
	pvc.Status.AllocatedResources = nil
	pvc.Status.AllocatedResourceStatuses = nil
	if _, err := e.client.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		return ignoreNotFound(fmt.Errorf("claim %s status: %w", key, err))
	}
	e.recorder.Event(pvc, corev1.EventTypeNormal, reasonVolumeResizeSuccessful,
		fmt.Sprintf("resize volume %q to %s succeeded", pv.Name, want.String()))
	return nil
}
