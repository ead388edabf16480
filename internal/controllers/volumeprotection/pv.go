package volumeprotection

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
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// PVProtection is the pv-protection controller.
type PVProtection struct {
	client  kubernetes.Interface
	volumes listerscorev1.PersistentVolumeLister
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
}

// NewPVProtection builds the controller on the factory's volume informer.
func NewPVProtection(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *PVProtection {
	pvInf := factory.Core().V1().PersistentVolumes()
	c := &PVProtection{
		client: client, log: log,
		volumes: pvInf.Lister(),
		synced:  []cache.InformerSynced{pvInf.Informer().HasSynced},
		queue:   controllerutil.NewQueue("pvprotection"),
	}
	enqueue := func(o any) {
		if key, ok := keyOf(o); ok {
			c.queue.Add(key)
		}
	}
	_, _ = pvInf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(enqueue))
	return c
}

// Run reconciles until ctx ends.
func (c *PVProtection) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, c.synced, c.queue, 1, c.sync, c.log)
}

func (c *PVProtection) sync(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// A volume is in use while bound to a claim, as upstream judges it.
	inUse := func() (bool, error) { return pv.Status.Phase == corev1.VolumeBound, nil }
	add, remove, err := finalizerChange(pv, PVFinalizer, inUse)
	if err != nil || (!add && !remove) {
		return err
	}
	pv = pv.DeepCopy()
	pv.Finalizers, _ = withFinalizer(pv.Finalizers, PVFinalizer, add)
	if _, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("volume %s finalizer: %w", name, err)
	}
	return nil
}
