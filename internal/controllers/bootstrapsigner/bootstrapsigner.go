// Package bootstrapsigner signs the kube-public/cluster-info ConfigMap with
// every bootstrap token meant for signing, as upstream's bootstrap signer
// does: a joining node reads cluster-info without credentials and trusts
// its kubeconfig only when the jws-kubeconfig-<token-id> signature checks
// out with the token it was given.
package bootstrapsigner

import (
	"context"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// The ConfigMap that is signed, and the names inside it.
const (
	ClusterInfoNamespace = metav1.NamespacePublic
	ClusterInfoName      = "cluster-info"
	KubeconfigKey        = "kubeconfig"
	SignaturePrefix      = "jws-kubeconfig-"
)

const (
	tokenNamespace    = metav1.NamespaceSystem
	tokenSecretPrefix = "bootstrap-token-"
	queueKey          = "cluster-info"
)

var (
	tokenIDRe     = regexp.MustCompile(`^[a-z0-9]{6}$`)
	tokenSecretRe = regexp.MustCompile(`^[a-z0-9]{16}$`)
)

// Controller keeps cluster-info's signatures in step with the tokens.
type Controller struct {
	client kubernetes.Interface
	log    *slog.Logger
	now    func() time.Time
}

// New returns the controller; it watches only kube-system Secrets and
// kube-public ConfigMaps, with informers of its own.
func New(client kubernetes.Interface, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	return &Controller{client: client, log: log, now: time.Now}
}

// Run signs cluster-info until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	secretsFactory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(tokenNamespace))
	cmFactory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ClusterInfoNamespace))
	secrets := secretsFactory.Core().V1().Secrets()
	configMaps := cmFactory.Core().V1().ConfigMaps()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { queue.Add(queueKey) },
		UpdateFunc: func(any, any) { queue.Add(queueKey) },
		DeleteFunc: func(any) { queue.Add(queueKey) },
	}
	for _, inf := range []cache.SharedIndexInformer{secrets.Informer(), configMaps.Informer()} {
		if _, err := inf.AddEventHandler(enqueue); err != nil {
			c.log.Error("bootstrap signer", "err", err)
			return
		}
	}
	secretsFactory.Start(ctx.Done())
	cmFactory.Start(ctx.Done())
	defer secretsFactory.Shutdown()
	defer cmFactory.Shutdown()
	secretsFactory.WaitForCacheSync(ctx.Done())
	cmFactory.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	queue.Add(queueKey)
	for {
		key, quit := queue.Get()
		if quit {
			return
		}
		next, err := c.sync(ctx, secrets.Lister(), configMaps.Lister())
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Warn("sign cluster-info", "err", err)
			queue.AddRateLimited(key)
		default:
			queue.Forget(key)
			if !next.IsZero() {
				// Drop the signature of the first token to expire on time.
				queue.AddAfter(key, next.Sub(c.now()))
			}
		}
		queue.Done(key)
	}
}

// sync writes the signatures cluster-info should carry; it returns when
// the next signing token expires (zero if none does).
func (c *Controller) sync(ctx context.Context, secrets corelisters.SecretLister, configMaps corelisters.ConfigMapLister) (time.Time, error) {
	cm, err := configMaps.ConfigMaps(ClusterInfoNamespace).Get(ClusterInfoName)
	if apierrors.IsNotFound(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	list, err := secrets.Secrets(tokenNamespace).List(labels.Everything())
	if err != nil {
		return time.Time{}, err
	}
	data, next := signedData(cm.Data, list, c.now())
	if maps.Equal(data, cm.Data) {
		return next, nil
	}
	cm = cm.DeepCopy()
	cm.Data = data
	_, err = c.client.CoreV1().ConfigMaps(ClusterInfoNamespace).Update(ctx, cm, metav1.UpdateOptions{})
	return next, err
}

// signedData returns cluster-info's data with one signature per valid
// signing token and none other, and the earliest expiry among those tokens.
func signedData(data map[string]string, secrets []*corev1.Secret, now time.Time) (map[string]string, time.Time) {
	out := make(map[string]string, len(data))
	for k, v := range data {
		if !strings.HasPrefix(k, SignaturePrefix) {
			out[k] = v
		}
	}
	content, ok := data[KubeconfigKey]
	if !ok {
		return data, time.Time{} // nothing to sign yet: leave it as it is
	}
	var next time.Time
	for _, s := range secrets {
		id, secret, expires, ok := signingToken(s, now)
		if !ok {
			continue
		}
		sig, err := Sign(content, id, secret)
		if err != nil {
			continue
		}
		out[SignaturePrefix+id] = sig
		if !expires.IsZero() && (next.IsZero() || expires.Before(next)) {
			next = expires
		}
	}
	return out, next
}

// signingToken returns the token of a bootstrap token Secret that may sign
// cluster-info now, and when it expires (zero: never).
func signingToken(s *corev1.Secret, now time.Time) (id, secret string, expires time.Time, ok bool) {
	if s.Type != corev1.SecretTypeBootstrapToken || s.DeletionTimestamp != nil {
		return "", "", time.Time{}, false
	}
	id, secret = string(s.Data["token-id"]), string(s.Data["token-secret"])
	if !tokenIDRe.MatchString(id) || !tokenSecretRe.MatchString(secret) || s.Name != tokenSecretPrefix+id {
		return "", "", time.Time{}, false
	}
	if string(s.Data["usage-bootstrap-signing"]) != "true" {
		return "", "", time.Time{}, false
	}
	if exp := string(s.Data["expiration"]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !now.Before(t) {
			return "", "", time.Time{}, false
		}
		expires = t
	}
	return id, secret, expires, true
}
