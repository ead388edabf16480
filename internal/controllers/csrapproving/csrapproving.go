// Package csrapproving approves node client certificate requests, as
// upstream's csrapproving controller does: a request for
// kubernetes.io/kube-apiserver-client-kubelet that is exactly a node's
// client certificate is approved when a SubjectAccessReview says its
// requestor may create certificatesigningrequests/selfnodeclient (a node
// renewing its own certificate) or certificatesigningrequests/nodeclient
// (a bootstrapping node). Anything else stays pending for a human.
package csrapproving

import (
	"context"
	"fmt"
	"log/slog"

	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/csrsigning"
)

// Run approves node client certificate requests until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, log *slog.Logger) error {
	a := &approver{client: client, clock: clock.RealClock{}}
	return csrsigning.Loop(ctx, client, log, a.reconcile)
}

// approver decides on one request at a time; its clock stamps approvals.
type approver struct {
	client kubernetes.Interface
	clock  clock.PassiveClock
}

// permission is one way a requestor may be entitled to a node certificate.
type permission struct {
	subresource string
	message     string
}

var (
	selfNodeClient = permission{"selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview."}
	nodeClient     = permission{"nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."}
)

func (a *approver) reconcile(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	if len(csr.Status.Certificate) > 0 ||
		csrsigning.HasCondition(csr, certificatesv1.CertificateApproved) ||
		csrsigning.HasCondition(csr, certificatesv1.CertificateDenied) ||
		csrsigning.HasCondition(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	switch csr.Spec.SignerName {
	case csrsigning.SignerName:
		return a.reconcileClient(ctx, csr)
	case certificatesv1.KubeletServingSignerName:
		return a.reconcileServing(ctx, csr)
	}
	return nil
}

func (a *approver) reconcileClient(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	req, err := csrsigning.ParseRequest(csr.Spec.Request)
	if err != nil || csrsigning.ValidateKubeletClient(req, csr.Spec.Usages) != nil {
		return nil // not a node client certificate: a human decides
	}
	perms := []permission{nodeClient}
	if csr.Spec.Username == req.Subject.CommonName {
		perms = []permission{selfNodeClient, nodeClient}
	}
	for _, p := range perms {
		ok, err := allowed(ctx, a.client, csr, p.subresource)
		if err != nil {
			return err
		}
		if ok {
			return a.approve(ctx, csr, p.message)
		}
	}
	return nil
}

func (a *approver) approve(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, message string) error {
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "AutoApproved", Message: message, LastUpdateTime: metav1.NewTime(a.clock.Now()),
	})
	_, err := a.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	return err
}

// allowed asks the API server whether the CSR's requestor may create
// certificatesigningrequests/<subresource>.
func allowed(ctx context.Context, client kubernetes.Interface, csr *certificatesv1.CertificateSigningRequest, subresource string) (bool, error) {
	var extra map[string]authorizationv1.ExtraValue
	if len(csr.Spec.Extra) > 0 {
		extra = make(map[string]authorizationv1.ExtraValue, len(csr.Spec.Extra))
		for k, v := range csr.Spec.Extra {
			extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: csr.Spec.Username, UID: csr.Spec.UID, Groups: csr.Spec.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: certificatesv1.GroupName, Resource: "certificatesigningrequests", Verb: "create", Subresource: subresource,
		},
	}}
	out, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review for %s: %w", csr.Name, err)
	}
	return out.Status.Allowed, nil
}
