package admission

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

func TestNodeRestriction(t *testing.T) {
	node := &authn.User{Name: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}}
	admin := &authn.User{Name: "admin", Groups: []string{"system:masters"}}
	pod := func(name, nodeName string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "uid-" + "name"},
			Spec: corev1.PodSpec{NodeName: nodeName, ServiceAccountName: "sa"}}
	}
	pods := map[string]*corev1.Pod{"mine": pod("mine", "n1"), "theirs": pod("theirs", "n2")}
	p := NewNodeRestriction(func(ns, name string) (*corev1.Pod, bool) { pd, ok := pods[name]; return pd, ok })
	podsGVR := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	nodesGVR := schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	leasesGVR := schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
	saGVR := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	slicesGVR := schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	withLabel := func(k string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{k: "x"}}}
	}
	token := func(podName string) *authenticationv1.TokenRequest {
		return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: podName}}}
	}
	tests := []struct {
		name    string
		a       Attributes
		allowed bool
	}{
		{"status of own pod", Attributes{Operation: Update, Resource: podsGVR, Subresource: "status", Namespace: "ns", Name: "mine", Object: pods["mine"], OldObject: pods["mine"], User: node}, true},
		{"status of another node's pod", Attributes{Operation: Update, Resource: podsGVR, Subresource: "status", Namespace: "ns", Name: "theirs", Object: pods["theirs"], OldObject: pods["theirs"], User: node}, false},
		{"delete own pod", Attributes{Operation: Delete, Resource: podsGVR, Namespace: "ns", Name: "mine", OldObject: pods["mine"], User: node}, true},
		{"delete another node's pod", Attributes{Operation: Delete, Resource: podsGVR, Namespace: "ns", Name: "theirs", OldObject: pods["theirs"], User: node}, false},
		{"evict another node's pod", Attributes{Operation: Delete, Resource: podsGVR, Subresource: "eviction", Namespace: "ns", Name: "theirs", OldObject: pods["theirs"], User: node}, false},
		{"create a plain pod", Attributes{Operation: Create, Resource: podsGVR, Namespace: "ns", Name: "new", Object: pod("new", "n1"), User: node}, false},
		{"admin deletes any pod", Attributes{Operation: Delete, Resource: podsGVR, Namespace: "ns", Name: "theirs", OldObject: pods["theirs"], User: admin}, true},
		{"update own node", Attributes{Operation: Update, Resource: nodesGVR, Name: "n1", Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, OldObject: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, User: node}, true},
		{"update another node", Attributes{Operation: Update, Resource: nodesGVR, Name: "n2", Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}, User: node}, false},
		{"delete another node", Attributes{Operation: Delete, Resource: nodesGVR, Name: "n2", User: node}, false},
		{"label itself with a restricted label", Attributes{Operation: Update, Resource: nodesGVR, Name: "n1", Object: withLabel("node-restriction.kubernetes.io/pci"), OldObject: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, User: node}, false},
		{"label itself with an ordinary label", Attributes{Operation: Update, Resource: nodesGVR, Name: "n1", Object: withLabel("example.com/x"), OldObject: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, User: node}, true},
		{"own lease", Attributes{Operation: Update, Resource: leasesGVR, Namespace: "kube-node-lease", Name: "n1", Object: &coordinationv1.Lease{}, User: node}, true},
		{"another node's lease", Attributes{Operation: Update, Resource: leasesGVR, Namespace: "kube-node-lease", Name: "n2", Object: &coordinationv1.Lease{}, User: node}, false},
		{"a lease elsewhere", Attributes{Operation: Create, Resource: leasesGVR, Namespace: "kube-system", Name: "n1", Object: &coordinationv1.Lease{}, User: node}, false},
		{"token for own pod", Attributes{Operation: Create, Resource: saGVR, Subresource: "token", Namespace: "ns", Name: "sa", Object: token("mine"), User: node}, true},
		{"token for another node's pod", Attributes{Operation: Create, Resource: saGVR, Subresource: "token", Namespace: "ns", Name: "sa", Object: token("theirs"), User: node}, false},
		{"token for another service account", Attributes{Operation: Create, Resource: saGVR, Subresource: "token", Namespace: "ns", Name: "other", Object: token("mine"), User: node}, false},
		{"own DNS EndpointSlice", Attributes{Operation: Create, Resource: slicesGVR, Namespace: "kube-system", Name: "kube-dns-n1", User: node}, true},
		{"another EndpointSlice in kube-system", Attributes{Operation: Create, Resource: slicesGVR, Namespace: "kube-system", Name: "kube-dns-evil", User: node}, false},
		{"unbound token", Attributes{Operation: Create, Resource: saGVR, Subresource: "token", Namespace: "ns", Name: "sa", Object: &authenticationv1.TokenRequest{}, User: node}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Validate(context.Background(), &tt.a)
			if tt.allowed && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.allowed {
				if err == nil {
					t.Fatal("allowed")
				}
				if !apierrors.IsForbidden(err) {
					t.Fatalf("want 403 Forbidden, got %v", err)
				}
			}
		})
	}
}

func TestNodeRestrictionPodCertificateRequests(t *testing.T) {
	node := &authn.User{Name: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}}
	pod := func(name, nodeName string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid")},
			Spec: corev1.PodSpec{NodeName: nodeName, ServiceAccountName: "sa", Volumes: []corev1.Volume{{Name: "tls",
				VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{PodCertificate: &corev1.PodCertificateProjection{SignerName: "example.com/s", KeyType: "ED25519"}}}}}}}}}
	}
	mirror := pod("mirror", "n1")
	mirror.Annotations = map[string]string{mirrorPodAnnotation: "x"}
	pods := map[string]*corev1.Pod{"mine": pod("mine", "n1"), "theirs": pod("theirs", "n2"), "mirror": mirror}
	p := NewNodeRestriction(func(ns, name string) (*corev1.Pod, bool) { pd, ok := pods[name]; return pd, ok })
	gvr := schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "podcertificaterequests"}
	req := func(edit func(*certificatesv1.PodCertificateRequestSpec)) *certificatesv1.PodCertificateRequest {
		r := &certificatesv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "mine-", Namespace: "ns"},
			Spec: certificatesv1.PodCertificateRequestSpec{SignerName: "example.com/s", PodName: "mine", PodUID: "mine-uid",
				ServiceAccountName: "sa", ServiceAccountUID: "sa-uid", NodeName: "n1", NodeUID: "n1-uid"}}
		if edit != nil {
			edit(&r.Spec)
		}
		return r
	}
	create := func(r *certificatesv1.PodCertificateRequest) Attributes {
		return Attributes{Operation: Create, Resource: gvr, Namespace: "ns", Object: r, User: node}
	}
	for _, tt := range []struct {
		name    string
		a       Attributes
		allowed bool
	}{
		{"for own pod", create(req(nil)), true},
		{"naming another node", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.NodeName = "n2" })), false},
		{"for another node's pod", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.PodName, s.PodUID = "theirs", "theirs-uid" })), false},
		{"for a missing pod", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.PodName = "gone" })), false},
		{"with a stale pod UID", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.PodUID = "old" })), false},
		{"for a mirror pod", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.PodName, s.PodUID = "mirror", "mirror-uid" })), false},
		{"for another service account", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.ServiceAccountName = "admin" })), false},
		{"for a signer the pod does not use", create(req(func(s *certificatesv1.PodCertificateRequestSpec) { s.SignerName = "example.com/other" })), false},
		{"writing the status", Attributes{Operation: Update, Resource: gvr, Subresource: "status", Namespace: "ns", Name: "mine-1", Object: req(nil), User: node}, false},
		{"by a signer, not a node", Attributes{Operation: Update, Resource: gvr, Subresource: "status", Namespace: "ns", Name: "mine-1", Object: req(nil),
			User: &authn.User{Name: "signer", Groups: []string{"system:authenticated"}}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Validate(context.Background(), &tt.a)
			if tt.allowed && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.allowed && !apierrors.IsForbidden(err) {
				t.Fatalf("got %v, want 403 Forbidden", err)
			}
		})
	}
}
