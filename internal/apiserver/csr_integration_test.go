package apiserver_test

import (
	"context"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestCSRApprovalAndStatusConditions follows upstream's CSR API conformance
// flow: conditions written through /approval and /status are kept, the
// status subresource cannot forge an approval.
func TestCSRApprovalAndStatusConditions(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	csrs := s.Client.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-like"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    csrRequest(t),
			SignerName: "example.com/e2e",
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	patched, err := csrs.Patch(ctx, csr.Name, types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"patchedapproval":"true"}},"status":{"conditions":[{"type":"ApprovalPatch","status":"True","reason":"e2e"}]}}`),
		metav1.PatchOptions{}, "approval")
	if err != nil {
		t.Fatal(err)
	}
	if got := conditionTypes(patched); len(got) != 1 || got[0] != "ApprovalPatch" || patched.Annotations["patchedapproval"] != "true" {
		t.Fatalf("after /approval patch: conditions %v, annotations %v", got, patched.Annotations)
	}

	patched.Status.Conditions = append(patched.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "E2E"})
	approved, err := csrs.UpdateApproval(ctx, patched.Name, patched, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := conditionTypes(approved); len(got) != 2 || got[1] != string(certificatesv1.CertificateApproved) {
		t.Fatalf("after /approval update: conditions %v", got)
	}

	approved.Status.Conditions = append(approved.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: "StatusUpdate", Status: corev1.ConditionTrue, Reason: "E2E"})
	approved.Status.Conditions[1].Reason = "Forged"
	updated, err := csrs.UpdateStatus(ctx, approved, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := conditionTypes(updated); len(got) != 3 || got[2] != "StatusUpdate" || updated.Status.Conditions[1].Reason != "E2E" {
		t.Fatalf("after /status update: conditions %+v, want 3 with the stored Approved", updated.Status.Conditions)
	}

	updated.Status.Conditions = append(updated.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue})
	if _, err := csrs.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("/status adding Denied: err = %v, want Invalid", err)
	}
}

func conditionTypes(csr *certificatesv1.CertificateSigningRequest) []string {
	var out []string
	for _, c := range csr.Status.Conditions {
		out = append(out, string(c.Type))
	}
	return out
}
