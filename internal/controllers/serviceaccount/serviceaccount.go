// Package serviceaccount makes sure every active namespace has its
// "default" ServiceAccount.
package serviceaccount

import (
	"context"
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
)

// DefaultName is the ServiceAccount every namespace gets.
const DefaultName = "default"

// Controller creates missing default ServiceAccounts.
type Controller struct {
	client   kubernetes.Interface
	nsLister listerscorev1.NamespaceLister
	saLister listerscorev1.ServiceAccountLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	ns := factory.Core().V1().Namespaces()
	sa := factory.Core().V1().ServiceAccounts()
	c := &Controller{
		client: client, nsLister: ns.Lister(), saLister: sa.Lister(), log: log,
		synced: []cache.InformerSynced{ns.Informer().HasSynced, sa.Informer().HasSynced},
		queue:  controllerutil.NewQueue("serviceaccount"),
	}
	_, _ = ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.queue.Add(o.(*corev1.Namespace).Name) },
		UpdateFunc: func(_, o any) { c.queue.Add(o.(*corev1.Namespace).Name) },
	})
	_, _ = sa.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(o any) {
			if s, ok := o.(*corev1.ServiceAccount); ok && s.Name == DefaultName {
				c.queue.Add(s.Namespace)
			}
		},
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, c.synced, c.queue, 1, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.nsLister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive || ns.DeletionTimestamp != nil {
		return nil
	}
	if _, err := c.saLister.ServiceAccounts(name).Get(DefaultName); err == nil {
		return nil
	}
	_, err = c.client.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultName},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
