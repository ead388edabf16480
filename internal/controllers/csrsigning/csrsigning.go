// Package csrsigning approves and signs the certificate requests of nodes:
// a joining node (authenticated by a bootstrap token) or a node renewing
// its credentials asks for a kubelet client certificate
// (signer kubernetes.io/kube-apiserver-client-kubelet) for
// system:node:<name> in group system:nodes; the controller approves such
// requests, as upstream's csrapproving controller does, and signs approved
// ones with the cluster CA.
package csrsigning

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// SignerName is the signer this controller serves.
const SignerName = certificatesv1.KubeAPIServerClientKubeletSignerName

// Signer issues a certificate for a PEM request.
type Signer func(csrPEM []byte, ttl time.Duration) ([]byte, error)

// Run approves and signs node client certificate requests until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, sign Signer, log *slog.Logger) error {
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
	factory.WaitForCacheSync(ctx.Done())
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	defer factory.Shutdown()
	for {
		key, quit := queue.Get()
		if quit {
			return nil
		}
		csr, err := inf.Lister().Get(key)
		if err == nil {
			err = reconcile(ctx, client, csr.DeepCopy(), sign)
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

func condition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func reconcile(ctx context.Context, client kubernetes.Interface, csr *certificatesv1.CertificateSigningRequest, sign Signer) error {
	if csr.Spec.SignerName != SignerName || len(csr.Status.Certificate) > 0 ||
		condition(csr, certificatesv1.CertificateDenied) || condition(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	csrs := client.CertificatesV1().CertificateSigningRequests()
	if !condition(csr, certificatesv1.CertificateApproved) {
		ok, reason := approvable(csr)
		if !ok {
			return nil // left for a human: kubectl certificate approve|deny
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
			Reason: "AutoApproved", Message: reason, LastUpdateTime: metav1.Now(),
		})
		updated, err := csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		csr = updated
	}
	ttl := 365 * 24 * time.Hour
	if s := csr.Spec.ExpirationSeconds; s != nil && *s >= 600 {
		ttl = time.Duration(*s) * time.Second
	}
	cert, err := sign(csr.Spec.Request, ttl)
	if err != nil {
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue,
			Reason: "SigningError", Message: err.Error(), LastUpdateTime: metav1.Now(),
		})
	} else {
		csr.Status.Certificate = cert
	}
	_, err = csrs.UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	return err
}

// approvable says whether a request is a node's own client certificate,
// asked for by a bootstrapping node or by that node itself.
func approvable(csr *certificatesv1.CertificateSigningRequest) (bool, string) {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return false, ""
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return false, ""
	}
	cn := req.Subject.CommonName
	if !strings.HasPrefix(cn, "system:node:") || len(req.Subject.Organization) != 1 || req.Subject.Organization[0] != "system:nodes" {
		return false, ""
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 {
		return false, ""
	}
	for _, u := range csr.Spec.Usages {
		if u != certificatesv1.UsageClientAuth && u != certificatesv1.UsageDigitalSignature && u != certificatesv1.UsageKeyEncipherment {
			return false, ""
		}
	}
	switch {
	case slices.Contains(csr.Spec.Groups, "system:bootstrappers"):
		return true, fmt.Sprintf("Auto approving kubelet client certificate after bootstrap-token authentication of %s", csr.Spec.Username)
	case csr.Spec.Username == cn && slices.Contains(csr.Spec.Groups, "system:nodes"):
		return true, "Auto approving self kubelet client certificate after authentication"
	}
	return false, ""
}
