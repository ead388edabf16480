package csrapproving

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/internal/controllers/csrsigning"
)

func servingRequest(t *testing.T, cn string, dns []string, ips ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func node(name string, addrs ...corev1.NodeAddress) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Addresses: addrs}}
}

func TestReconcileServing(t *testing.T) {
	n1 := node("n1", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "host1"})
	n2 := node("n2", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.2"})
	for _, tc := range []struct {
		name     string
		req      []byte
		user     string
		nodes    []runtime.Object
		approved bool
	}{
		{"own name and address", servingRequest(t, "system:node:n1", []string{"n1", "host1"}, "10.0.0.1"), "system:node:n1", []runtime.Object{n1, n2}, true},
		{"another node's address", servingRequest(t, "system:node:n1", []string{"n1"}, "10.0.0.2"), "system:node:n1", []runtime.Object{n1, n2}, false},
		{"address the node does not have", servingRequest(t, "system:node:n1", []string{"n1"}, "10.0.0.9"), "system:node:n1", []runtime.Object{n1, n2}, false},
		{"foreign DNS name", servingRequest(t, "system:node:n1", []string{"kubernetes.default"}, "10.0.0.1"), "system:node:n1", []runtime.Object{n1}, false},
		{"another node asking", servingRequest(t, "system:node:n1", []string{"n1"}, "10.0.0.1"), "system:node:n2", []runtime.Object{n1, n2}, false},
		{"before registration", servingRequest(t, "system:node:n3", []string{"n3"}, "10.0.0.3"), "system:node:n3", []runtime.Object{n1, n2}, true},
		{"before registration, taken address", servingRequest(t, "system:node:n3", []string{"n3"}, "10.0.0.1"), "system:node:n3", []runtime.Object{n1, n2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{
				ObjectMeta: metav1.ObjectMeta{Name: "csr"},
				Spec: certificatesv1.CertificateSigningRequestSpec{
					Request: tc.req, SignerName: certificatesv1.KubeletServingSignerName, Username: tc.user,
					Groups: []string{"system:nodes", "system:authenticated"},
					Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
				},
			}
			client := fake.NewClientset(append(tc.nodes, csr)...)
			if err := testApprover(client).reconcile(context.Background(), csr.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			got, _ := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "csr", metav1.GetOptions{})
			if a := csrsigning.HasCondition(got, certificatesv1.CertificateApproved); a != tc.approved {
				t.Errorf("approved = %v, want %v", a, tc.approved)
			}
		})
	}
}
