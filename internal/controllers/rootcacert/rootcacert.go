// Package rootcacert publishes the cluster CA as the kube-root-ca.crt
// ConfigMap in every namespace, so that pods can verify the API server
// (the kube-api-access projected volume mounts its ca.crt key).
package rootcacert

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

const (
	// ConfigMapName is the published ConfigMap.
	ConfigMapName = "kube-root-ca.crt"
	// DataKey holds the CA bundle in PEM.
	DataKey = "ca.crt"
	// DescriptionAnnotation carries upstream's description of the ConfigMap.
	DescriptionAnnotation = "kubernetes.io/description"
	description           = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller keeps kube-root-ca.crt present and unmodified in every
// namespace that is not terminating.
type Controller struct {
	client   kubernetes.Interface
	caPEM    []byte
	nsLister listerscorev1.NamespaceLister
	cmLister listerscorev1.ConfigMapLister
	cmInf    cache.SharedIndexInformer
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New builds the controller, which writes through client. Namespaces come
// from factory; the ConfigMaps come from a private informer over
// watchClient that watches only kube-root-ca.crt objects (the shared
// factory's ConfigMap informer would hold every ConfigMap). watchClient
// must be allowed to list and watch ConfigMaps in every namespace, which
// the controller's own role (create and update only) is not: pass the
// identity the shared informers use.
func New(client, watchClient kubernetes.Interface, factory informers.SharedInformerFactory, caPEM []byte, log *slog.Logger) *Controller {
	ns := factory.Core().V1().Namespaces()
	cmInf := coreinformers.NewFilteredConfigMapInformer(watchClient, metav1.NamespaceAll, 12*time.Hour,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ConfigMapName).String()
		})
	c := &Controller{
		client: client, caPEM: caPEM, log: log,
		nsLister: ns.Lister(), cmLister: listerscorev1.NewConfigMapLister(cmInf.GetIndexer()), cmInf: cmInf,
		synced: []cache.InformerSynced{ns.Informer().HasSynced, cmInf.HasSynced},
		queue:  controllerutil.NewQueue("root-ca-cert-publisher"),
	}
	_, _ = ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.enqueueNamespace(o) },
		UpdateFunc: func(_, o any) { c.enqueueNamespace(o) },
	})
	_, _ = cmInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { c.enqueueConfigMap(o) },
		DeleteFunc: c.enqueueConfigMap,
	})
	return c
}

func (c *Controller) enqueueNamespace(o any) {
	if ns, ok := o.(*corev1.Namespace); ok {
		c.queue.Add(ns.Name)
	}
}

func (c *Controller) enqueueConfigMap(o any) {
	o = informerutil.Unwrap(o)
	if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == ConfigMapName {
		c.queue.Add(cm.Namespace)
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	go c.cmInf.Run(ctx.Done())
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

// sync makes the namespace's ConfigMap hold exactly the CA and the
// description; anything else in it is overwritten, as upstream does.
func (c *Controller) sync(ctx context.Context, namespace string) error {
	ns, err := c.nsLister.Get(namespace)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return nil // creating objects in a terminating namespace is refused
	}
	want := map[string]string{DataKey: string(c.caPEM)}
	cm, err := c.cmLister.ConfigMaps(namespace).Get(ConfigMapName)
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name:        ConfigMapName,
				Annotations: map[string]string{DescriptionAnnotation: description},
			},
			Data: want,
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) || isTerminating(err) {
			return nil // the informer brings the existing one back to us
		}
		return err
	}
	if err != nil {
		return err
	}
	if upToDate(cm, c.caPEM) {
		return nil
	}
	cm = cm.DeepCopy()
	cm.Data = want
	cm.BinaryData = nil
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[DescriptionAnnotation] = description
	_, err = c.client.CoreV1().ConfigMaps(namespace).Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		c.queue.AddRateLimited(namespace) // deleted or changed meanwhile: look again
		return nil
	}
	return err
}

func upToDate(cm *corev1.ConfigMap, caPEM []byte) bool {
	return len(cm.Data) == 1 && cm.Data[DataKey] == string(caPEM) && len(cm.BinaryData) == 0 &&
		cm.Annotations[DescriptionAnnotation] == description
}

// isTerminating recognises the refusal to create in a terminating namespace.
func isTerminating(err error) bool {
	return apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
