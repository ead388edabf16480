package apiserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestNodeReadsOnlyItsPodCertificateRequests: through the API, a node reads
// back a request naming it the moment it exists, and lists or watches
// requests only with its own spec.nodeName field selector, which the
// server answers with its requests alone.
func TestNodeReadsOnlyItsPodCertificateRequests(t *testing.T) {
	lookup := func(token string) (*authn.User, bool) {
		if token == "admin" {
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		}
		return &authn.User{Name: "system:node:" + token, Groups: []string{"system:nodes", "system:authenticated"}}, true
	}
	s := testserver.StartWith(t, testserver.Options{Authenticator: authn.NewBearerToken(lookup), AccessControl: true})
	ctx := context.Background()
	admin, nodeA := s.ClientWithToken("admin"), s.ClientWithToken("node-a")
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stub, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	pcrs := admin.CertificatesV1().PodCertificateRequests("ns")
	create := func(pod, node string) string {
		t.Helper()
		r, err := pcrs.Create(ctx, &certificatesv1.PodCertificateRequest{
			ObjectMeta: metav1.ObjectMeta{GenerateName: pod + "-", Namespace: "ns"},
			Spec: certificatesv1.PodCertificateRequestSpec{SignerName: "example.com/s", PodName: pod, PodUID: types.UID(pod + "-uid"),
				ServiceAccountName: "sa", ServiceAccountUID: "sa-uid", NodeName: types.NodeName(node), NodeUID: types.UID(node + "-uid"),
				StubPKCS10Request: stub},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Name
	}
	mine, theirs := create("p", "node-a"), create("q", "node-b")

	own := nodeA.CertificatesV1().PodCertificateRequests("ns")
	if _, err := own.Get(ctx, mine, metav1.GetOptions{}); err != nil {
		t.Errorf("get own request: %v", err)
	}
	if _, err := own.Get(ctx, theirs, metav1.GetOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no relationship found between node 'node-a'") {
		t.Errorf("get another node's request: %v, want forbidden", err)
	}
	l, err := nodeA.CertificatesV1().PodCertificateRequests("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != mine {
		t.Errorf("list with own selector = %v, %v; want only %s", l, err, mine)
	}
	w, err := own.Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"})
	if err != nil {
		t.Errorf("watch with own selector: %v", err)
	} else {
		w.Stop()
	}
	for _, sel := range []string{"", "spec.nodeName=node-b", "metadata.name=" + mine} {
		_, err := own.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "can only list/watch podcertificaterequests with nodeName field selector") {
			t.Errorf("list with %q: %v, want forbidden", sel, err)
		}
	}
	if _, err := own.Watch(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("watch without selector: %v, want forbidden", err)
	}
	if err := own.Delete(ctx, mine, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("delete own request: %v, want forbidden", err)
	}
}
