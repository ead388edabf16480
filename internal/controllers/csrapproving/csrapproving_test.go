package csrapproving

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/controllers/csrsigning"
)

func request(t *testing.T, subject pkix.Name) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// defaultPolicy answers reviews as upstream's default RBAC policy does:
// bootstrappers may create nodeclient requests, nodes selfnodeclient ones.
func defaultPolicy(reviews *[]authorizationv1.SubjectAccessReviewSpec) k8stesting.ReactionFunc {
	return func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		*reviews = append(*reviews, sar.Spec)
		ra := sar.Spec.ResourceAttributes
		ok := ra != nil && ra.Group == "certificates.k8s.io" && ra.Resource == "certificatesigningrequests" && ra.Verb == "create" &&
			(ra.Subresource == "nodeclient" && slices.Contains(sar.Spec.Groups, "system:bootstrappers") ||
				ra.Subresource == "selfnodeclient" && slices.Contains(sar.Spec.Groups, "system:nodes"))
		sar.Status.Allowed = ok
		return true, sar, nil
	}
}

func TestReconcile(t *testing.T) {
	node := pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	masters := pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}
	clientUse := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth}
	for _, tc := range []struct {
		name     string
		subject  pkix.Name
		signer   string
		user     string
		groups   []string
		usages   []certificatesv1.KeyUsage
		approved string // the approval message, or "" for none
	}{
		{"bootstrapping node", node, csrsigning.SignerName, "system:bootstrap:abcdef",
			[]string{"system:bootstrappers", "system:authenticated"}, clientUse, nodeClient.message},
		{"node renewing itself", node, csrsigning.SignerName, "system:node:n1",
			[]string{"system:nodes", "system:authenticated"}, clientUse, selfNodeClient.message},
		{"node asking for another node", node, csrsigning.SignerName, "system:node:n2",
			[]string{"system:nodes", "system:authenticated"}, clientUse, ""},
		{"bootstrap token asking for masters", masters, csrsigning.SignerName, "system:bootstrap:abcdef",
			[]string{"system:bootstrappers", "system:authenticated"}, clientUse, ""},
		{"masters on the client signer", masters, certificatesv1.KubeAPIServerClientSignerName, "system:bootstrap:abcdef",
			[]string{"system:bootstrappers", "system:authenticated"}, clientUse, ""},
		{"user without the permission", node, csrsigning.SignerName, "mallory",
			[]string{"system:authenticated"}, clientUse, ""},
		{"server usage", node, csrsigning.SignerName, "system:bootstrap:abcdef",
			[]string{"system:bootstrappers"}, []certificatesv1.KeyUsage{certificatesv1.UsageServerAuth}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{
				ObjectMeta: metav1.ObjectMeta{Name: "csr"},
				Spec: certificatesv1.CertificateSigningRequestSpec{
					Request: request(t, tc.subject), SignerName: tc.signer, Usages: tc.usages,
					Username: tc.user, UID: "uid-1", Groups: tc.groups,
					Extra: map[string]certificatesv1.ExtraValue{"k": {"v"}},
				},
			}
			client := fake.NewClientset(csr)
			var reviews []authorizationv1.SubjectAccessReviewSpec
			client.PrependReactor("create", "subjectaccessreviews", defaultPolicy(&reviews))
			if err := testApprover(client).reconcile(context.Background(), csr.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			got, err := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "csr", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var msg string
			if csrsigning.HasCondition(got, certificatesv1.CertificateApproved) {
				msg = got.Status.Conditions[0].Message
			}
			if msg != tc.approved {
				t.Fatalf("approval = %q, want %q", msg, tc.approved)
			}
			if msg != "" && !got.Status.Conditions[0].LastUpdateTime.Time.Equal(approvalTime) {
				t.Errorf("approval time %s, want the controller clock's %s", got.Status.Conditions[0].LastUpdateTime, approvalTime)
			}
			for _, r := range reviews {
				if r.User != tc.user || r.UID != "uid-1" || !slices.Equal(r.Groups, tc.groups) || len(r.Extra["k"]) != 1 {
					t.Errorf("review does not name the requestor: %+v", r)
				}
			}
		})
	}
}

func TestNoShortcutWithoutReview(t *testing.T) {
	node := pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: request(t, node), SignerName: csrsigning.SignerName, Username: "system:bootstrap:abcdef",
			Groups: []string{"system:bootstrappers"}, Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
		},
	}
	client := fake.NewClientset(csr)
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		return true, sar, nil // denied: the policy no longer grants nodeclient
	})
	if err := testApprover(client).reconcile(context.Background(), csr.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "csr", metav1.GetOptions{})
	if len(got.Status.Conditions) != 0 {
		t.Fatalf("approved without the review allowing it: %+v", got.Status.Conditions)
	}
}

// approvalTime is the fake clock's time, far from the wall clock's.
var approvalTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func testApprover(client kubernetes.Interface) *approver {
	return &approver{client: client, clock: clocktesting.NewFakePassiveClock(approvalTime)}
}
