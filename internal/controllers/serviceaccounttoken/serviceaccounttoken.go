// Package serviceaccounttoken is upstream's tokens controller: it fills
// Secrets of type kubernetes.io/service-account-token that users create
// for a ServiceAccount with a legacy (non-expiring) token, the cluster CA
// and the namespace, and deletes such Secrets once their ServiceAccount is
// gone. Like upstream since 1.24, it never creates token Secrets itself.
package serviceaccounttoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// Signer signs the legacy token stored in secretName for the
// ServiceAccount namespace/saName with uid saUID.
type Signer func(namespace, saName, saUID, secretName string) (string, error)

// Controller fills and garbage-collects ServiceAccount token Secrets.
type Controller struct {
	client       kubernetes.Interface
	sign         Signer
	caPEM        []byte
	saLister     listerscorev1.ServiceAccountLister
	secretLister listerscorev1.SecretLister
	secretInf    cache.SharedIndexInformer
	synced       []cache.InformerSynced
	saQueue      workqueue.TypedRateLimitingInterface[string]
	secretQueue  workqueue.TypedRateLimitingInterface[string]
	log          *slog.Logger
}

// New builds the controller. ServiceAccounts come from factory; Secrets
// from a private informer over client that watches only token Secrets.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, sign Signer, caPEM []byte, log *slog.Logger) *Controller {
	sas := factory.Core().V1().ServiceAccounts()
	secretInf := coreinformers.NewFilteredSecretInformer(client, metav1.NamespaceAll, 12*time.Hour,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeServiceAccountToken)).String()
		})
	c := &Controller{
		client: client, sign: sign, caPEM: caPEM, log: log,
		saLister:     sas.Lister(),
		secretLister: listerscorev1.NewSecretLister(secretInf.GetIndexer()),
		secretInf:    secretInf,
		synced:       []cache.InformerSynced{sas.Informer().HasSynced, secretInf.HasSynced},
		saQueue:      controllerutil.NewQueue("serviceaccount-tokens-service"),
		secretQueue:  controllerutil.NewQueue("serviceaccount-tokens-secret"),
	}
	// Only a deletion (or a recreation under a new UID, which the sync
	// sees as a deletion) needs work on the ServiceAccount's side.
	_, _ = sas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { c.enqueueServiceAccount(o) },
		DeleteFunc: c.enqueueServiceAccount,
	})
	_, _ = secretInf.AddEventHandler(informerutil.OnAnyChange(c.enqueueSecret))
	return c
}

// saKey names a ServiceAccount by UID too, so that a recreated
// ServiceAccount of the same name keeps none of the old one's tokens.
type saKey struct{ Namespace, Name, UID string }

// secretKey carries what a deleted Secret's sync still needs.
type secretKey struct{ Namespace, Name, UID, SAName, SAUID string }

// encode turns a key struct into a queue key; names and annotations may
// hold any character, so no separator would be safe.
func encode(k any) string {
	b, _ := json.Marshal(k) // structs of strings always marshal
	return string(b)
}

func (c *Controller) enqueueServiceAccount(o any) {
	if sa, ok := informerutil.Unwrap(o).(*corev1.ServiceAccount); ok {
		c.saQueue.Add(encode(saKey{sa.Namespace, sa.Name, string(sa.UID)}))
	}
}

func (c *Controller) enqueueSecret(o any) {
	s, ok := informerutil.Unwrap(o).(*corev1.Secret)
	if !ok || s.Type != corev1.SecretTypeServiceAccountToken {
		return
	}
	c.secretQueue.Add(encode(secretKey{s.Namespace, s.Name, string(s.UID),
		s.Annotations[corev1.ServiceAccountNameKey], s.Annotations[corev1.ServiceAccountUIDKey]}))
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	go c.secretInf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.saQueue.ShutDown()
		c.secretQueue.ShutDown()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); controllerutil.RunWorkers(ctx, c.saQueue, 1, c.syncServiceAccount, c.log) }()
	go func() { defer wg.Done(); controllerutil.RunWorkers(ctx, c.secretQueue, 2, c.syncSecret, c.log) }()
	wg.Wait()
}

// syncServiceAccount deletes the token Secrets of a ServiceAccount that
// no longer exists.
func (c *Controller) syncServiceAccount(ctx context.Context, key string) error {
	var k saKey
	if err := json.Unmarshal([]byte(key), &k); err != nil {
		return nil // not ours; never retry
	}
	sa, err := c.cachedServiceAccount(k.Namespace, k.Name, k.UID)
	if err != nil || sa != nil {
		return err
	}
	secrets, err := c.secretLister.Secrets(k.Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range secrets {
		if belongsTo(s, k.Name, k.UID) {
			errs = append(errs, c.deleteSecret(ctx, s.Namespace, s.Name, s.UID))
		}
	}
	return errors.Join(errs...)
}

// syncSecret fills a token Secret, deletes it when its ServiceAccount
// does not exist, and drops a deleted one from its ServiceAccount's
// secrets list.
func (c *Controller) syncSecret(ctx context.Context, key string) error {
	var k secretKey
	if err := json.Unmarshal([]byte(key), &k); err != nil {
		return nil
	}
	secret, err := c.secretLister.Secrets(k.Namespace).Get(k.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err != nil || string(secret.UID) != k.UID {
		return c.removeReference(ctx, k)
	}
	sa, err := c.serviceAccount(ctx, k.Namespace, k.SAName, k.SAUID)
	if err != nil {
		return err
	}
	if sa == nil {
		return c.deleteSecret(ctx, secret.Namespace, secret.Name, secret.UID)
	}
	return c.fill(ctx, sa, secret)
}

// fill adds what is missing: the token only when there is none (upstream
// never replaces one), the namespace, and the CA when it differs.
func (c *Controller) fill(ctx context.Context, sa *corev1.ServiceAccount, cached *corev1.Secret) error {
	secrets := c.client.CoreV1().Secrets(cached.Namespace)
	live, err := secrets.Get(ctx, cached.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get secret %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	if live.ResourceVersion != cached.ResourceVersion {
		return nil // the informer brings the newer version back to us
	}
	needCA := len(c.caPEM) > 0 && string(live.Data[corev1.ServiceAccountRootCAKey]) != string(c.caPEM)
	needNamespace := len(live.Data[corev1.ServiceAccountNamespaceKey]) == 0
	needToken := len(live.Data[corev1.ServiceAccountTokenKey]) == 0
	if !needCA && !needNamespace && !needToken {
		return nil
	}
	s := live.DeepCopy()
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	if needCA {
		s.Data[corev1.ServiceAccountRootCAKey] = c.caPEM
	}
	if needNamespace {
		s.Data[corev1.ServiceAccountNamespaceKey] = []byte(s.Namespace)
	}
	if needToken {
		token, err := c.sign(sa.Namespace, sa.Name, string(sa.UID), s.Name)
		if err != nil {
			return fmt.Errorf("sign token for secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		s.Data[corev1.ServiceAccountTokenKey] = []byte(token)
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[corev1.ServiceAccountNameKey] = sa.Name
	s.Annotations[corev1.ServiceAccountUIDKey] = string(sa.UID)
	_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // changed or gone meanwhile: an informer event follows
	}
	if err != nil {
		return fmt.Errorf("fill secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// removeReference drops a deleted token Secret from the secrets list of
// the ServiceAccount it belonged to, if that still exists.
func (c *Controller) removeReference(ctx context.Context, k secretKey) error {
	if sa, err := c.cachedServiceAccount(k.Namespace, k.SAName, k.SAUID); err != nil || sa == nil {
		return err
	}
	sas := c.client.CoreV1().ServiceAccounts(k.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := sas.Get(ctx, k.SAName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if k.SAUID != "" && string(sa.UID) != k.SAUID {
			return nil
		}
		var refs []corev1.ObjectReference
		for _, r := range sa.Secrets {
			if r.Name != k.Name {
				refs = append(refs, r)
			}
		}
		if len(refs) == len(sa.Secrets) {
			return nil
		}
		sa.Secrets = refs
		_, err = sas.Update(ctx, sa, metav1.UpdateOptions{})
		return err
	})
}

// cachedServiceAccount returns the ServiceAccount from the cache, or nil
// when it is missing or has another UID than uid (when uid is set).
func (c *Controller) cachedServiceAccount(ns, name, uid string) (*corev1.ServiceAccount, error) {
	sa, err := c.saLister.ServiceAccounts(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if uid != "" && string(sa.UID) != uid {
		return nil, nil
	}
	return sa, nil
}

// serviceAccount is cachedServiceAccount, asking the API server on a
// cache miss: a Secret created right after its ServiceAccount must not
// be deleted because the informer lags.
func (c *Controller) serviceAccount(ctx context.Context, ns, name, uid string) (*corev1.ServiceAccount, error) {
	if name == "" {
		return nil, nil
	}
	sa, err := c.cachedServiceAccount(ns, name, uid)
	if err != nil || sa != nil {
		return sa, err
	}
	sa, err = c.client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get service account %s/%s: %w", ns, name, err)
	}
	if uid != "" && string(sa.UID) != uid {
		return nil, nil
	}
	return sa, nil
}

// deleteSecret deletes exactly the Secret with uid, never a recreation.
func (c *Controller) deleteSecret(ctx context.Context, ns, name string, uid types.UID) error {
	err := c.client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("delete token secret %s/%s: %w", ns, name, err)
}

// belongsTo reports whether s is a token Secret of the ServiceAccount
// name (with uid, when the Secret records one).
func belongsTo(s *corev1.Secret, name, uid string) bool {
	if s.Type != corev1.SecretTypeServiceAccountToken || s.Annotations[corev1.ServiceAccountNameKey] != name {
		return false
	}
	got := s.Annotations[corev1.ServiceAccountUIDKey]
	return got == "" || got == uid
}
