// Package csrsigning signs approved certificate requests with the cluster
// CA, as upstream's csrsigning controller does, for the signers Skiff
// serves: kubernetes.io/kube-apiserver-client-kubelet (node client
// certificates), kubernetes.io/kube-apiserver-client and
// kubernetes.io/kubelet-serving. Approval is someone else's decision
// (package csrapproving or a user with the approve verb); requests for any
// other signer are left alone.
package csrsigning

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// SignerName is the signer of node client certificates.
const SignerName = certificatesv1.KubeAPIServerClientKubeletSignerName

// Config configures the signer.
type Config struct {
	CA CA
	// MaxDuration caps every certificate's lifetime
	// (--cluster-signing-duration; default one year).
	MaxDuration time.Duration
	Logger      *slog.Logger
	// Clock dates certificates and conditions; nil means the real clock.
	// Tests pass a fake one.
	Clock clock.PassiveClock
}

func (cfg Config) now() time.Time {
	if cfg.Clock == nil {
		return clock.RealClock{}.Now()
	}
	return cfg.Clock.Now()
}

// Run signs approved requests until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	return Loop(ctx, client, cfg.Logger, func(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
		return reconcile(ctx, client, csr, cfg)
	})
}

// Handler reconciles one request; it may change csr (a private copy).
type Handler func(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error

// Loop calls handle for every certificate request that is added or
// changed, retrying failures with backoff, until ctx ends.
func Loop(ctx context.Context, client kubernetes.Interface, log *slog.Logger, handle Handler) error {
	if log == nil {
		log = slog.Default()
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Certificates().V1().CertificateSigningRequests()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	factory.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		csr, err := inf.Lister().Get(key)
		if err == nil {
			err = handle(ctx, csr.DeepCopy())
		} else if apierrors.IsNotFound(err) {
			err = nil
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("certificate request", "csr", key, "err", err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

// reconcile signs csr when it is approved, not yet signed, not denied or
// failed, and addressed to a signer Skiff serves; a request that the
// signer's rules refuse gets a Failed condition.
func reconcile(ctx context.Context, client kubernetes.Interface, csr *certificatesv1.CertificateSigningRequest, cfg Config) error {
	if len(csr.Status.Certificate) > 0 || !HasCondition(csr, certificatesv1.CertificateApproved) ||
		HasCondition(csr, certificatesv1.CertificateDenied) || HasCondition(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	serving := csr.Spec.SignerName == certificatesv1.KubeletServingSignerName
	switch csr.Spec.SignerName {
	case SignerName, certificatesv1.KubeAPIServerClientSignerName, certificatesv1.KubeletServingSignerName:
	default:
		return nil // not ours: another signer may serve it
	}
	req, err := ParseRequest(csr.Spec.Request)
	if err == nil {
		switch csr.Spec.SignerName {
		case SignerName:
			err = ValidateKubeletClient(req, csr.Spec.Usages)
		case certificatesv1.KubeAPIServerClientSignerName:
			err = ValidateAPIServerClient(csr.Spec.Usages)
		case certificatesv1.KubeletServingSignerName:
			err = ValidateKubeletServing(req, csr.Spec.Usages)
		}
	}
	now := cfg.now()
	if err != nil {
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue,
			Reason: "SignerValidationFailure", Message: err.Error(), LastUpdateTime: metav1.NewTime(now),
		})
	} else {
		cert, err := cfg.CA.sign(req, csr.Spec.Usages, serving, Duration(csr, cfg.MaxDuration), now)
		if err != nil {
			return fmt.Errorf("sign %s: %w", csr.Name, err)
		}
		csr.Status.Certificate = cert
	}
	_, err = client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	return err
}
