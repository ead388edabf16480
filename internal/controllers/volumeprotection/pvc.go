package volumeprotection

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// PVCProtection is the pvc-protection controller.
type PVCProtection struct {
	client kubernetes.Interface
	claims listerscorev1.PersistentVolumeClaimLister
	pods   listerscorev1.PodLister
	synced []cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// NewPVCProtection builds the controller on the factory's claim and pod
// informers.
func NewPVCProtection(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *PVCProtection {
	pvcInf := factory.Core().V1().PersistentVolumeClaims()
	podInf := factory.Core().V1().Pods()
	c := &PVCProtection{
		client: client, log: log,
		claims: pvcInf.Lister(),
		pods:   podInf.Lister(),
		synced: []cache.InformerSynced{pvcInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:  controllerutil.NewQueue("pvcprotection"),
	}
	enqueue := func(o any) {
		if key, ok := keyOf(o); ok {
			c.queue.Add(key)
		}
	}
	_, _ = pvcInf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(enqueue))
	// A pod that ends or goes may free the claims it used.
	podChanged := func(o any) {
		o = informerutil.Unwrap(o)
		if p, ok := o.(*corev1.Pod); ok {
			for _, name := range claimNames(p) {
				c.queue.Add(p.Namespace + "/" + name)
			}
		}
	}
	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { podChanged(o) },
		DeleteFunc: podChanged,
	})
	return c
}

// claimNames lists the claims a pod's volumes use, generic ephemeral
// volumes included (their claim is <pod>-<volume>).
func claimNames(p *corev1.Pod) []string {
	var names []string
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			names = append(names, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			names = append(names, p.Name+"-"+v.Name)
		}
	}
	return names
}

// podUsesClaim reports whether a pod holds the claim: it is scheduled (the
// kubelet starts no pod whose claim is being deleted, so an unscheduled
// one never will) and has not terminated.
func podUsesClaim(p *corev1.Pod, claim string) bool {
	if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, n := range claimNames(p) {
		if n == claim {
			return true
		}
	}
	return false
}

// Run reconciles until ctx ends.
func (c *PVCProtection) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

func (c *PVCProtection) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	add, remove, err := finalizerChange(pvc, PVCFinalizer, func() (bool, error) { return c.inUse(ctx, pvc) })
	if err != nil || (!add && !remove) {
		return err
	}
	pvc = pvc.DeepCopy()
	pvc.Finalizers, _ = withFinalizer(pvc.Finalizers, PVCFinalizer, add)
	_, err = c.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, pvc, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s finalizer: %w", key, err)
	}
	if remove {
		c.log.Info("released claim: no pod uses it", "claim", key)
	}
	return nil
}

// inUse asks the informer, then (before letting the claim go) the API
// server: a pod created a moment ago may be missing from the cache.
func (c *PVCProtection) inUse(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (bool, error) {
	pods, err := c.pods.Pods(pvc.Namespace).List(labels.Everything())
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		if podUsesClaim(p, pvc.Name) {
			return true, nil
		}
	}
	live, err := c.client.CoreV1().Pods(pvc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, fmt.Errorf("listing pods of %s: %w", pvc.Namespace, err)
	}
	for i := range live.Items {
		if podUsesClaim(&live.Items[i], pvc.Name) {
			return true, nil
		}
	}
	return false, nil
}
