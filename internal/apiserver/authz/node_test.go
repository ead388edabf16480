package authz

import (
	"context"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz/bootstrappolicy"
)

type fakeNodeSource struct {
	pods      []*corev1.Pod
	pvcs      map[string]*corev1.PersistentVolumeClaim
	pvs       map[string]*corev1.PersistentVolume
	ingresses []*networkingv1.Ingress
	pcrs      []*certificatesv1.PodCertificateRequest
}

func (f *fakeNodeSource) PodsOnNode(node, ns string, fn func(*corev1.Pod) bool) {
	for _, p := range f.pods {
		if p.Spec.NodeName == node && (ns == "" || p.Namespace == ns) && !fn(p) {
			return
		}
	}
}

func (f *fakeNodeSource) GetPersistentVolumeClaim(ns, name string) (*corev1.PersistentVolumeClaim, bool) {
	pvc, ok := f.pvcs[ns+"/"+name]
	return pvc, ok
}

func (f *fakeNodeSource) GetPersistentVolume(name string) (*corev1.PersistentVolume, bool) {
	pv, ok := f.pvs[name]
	return pv, ok
}

func (f *fakeNodeSource) IngressesIn(ns string) []*networkingv1.Ingress {
	var out []*networkingv1.Ingress
	for _, i := range f.ingresses {
		if i.Namespace == ns {
			out = append(out, i)
		}
	}
	return out
}

func (f *fakeNodeSource) GetPodCertificateRequest(_ context.Context, ns, name string) (*certificatesv1.PodCertificateRequest, bool) {
	for _, r := range f.pcrs {
		if r.Namespace == ns && r.Name == name {
			return r, true
		}
	}
	return nil, false
}

// testNodeRules is a small stand-in for system:node's rules.
var testNodeRules = []rbacv1.PolicyRule{
	{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"secrets", "configmaps", "pods"}},
	{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims", "persistentvolumes"}},
	{Verbs: []string{"create", "get", "list", "watch", "update", "patch"}, APIGroups: []string{""}, Resources: []string{"nodes"}},
}

func nodeUser(name string) *authn.User {
	return &authn.User{Name: "system:node:" + name, Groups: []string{"system:nodes", "system:authenticated"}}
}

func TestNodeAuthorizer(t *testing.T) {
	podA := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"},
		Spec: corev1.PodSpec{
			NodeName:           "node-a",
			ServiceAccountName: "sa-a",
			Volumes: []corev1.Volume{
				{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "secret-a"}}},
				{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}}}}}},
				{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim-a"}}},
			},
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "k"}}}}}},
		},
	}
	podB := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: "node-b", Volumes: []corev1.Volume{
			{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "secret-b"}}}}},
	}
	src := &fakeNodeSource{
		pods: []*corev1.Pod{podA, podB},
		pvcs: map[string]*corev1.PersistentVolumeClaim{"ns/claim-a": {Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-a"}}},
		pvs: map[string]*corev1.PersistentVolume{"pv-a": {Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			CSI: &corev1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: "h",
				NodeStageSecretRef:   &corev1.SecretReference{Namespace: "driver-ns", Name: "stage-secret"},
				NodePublishSecretRef: &corev1.SecretReference{Namespace: "ns", Name: "publish-secret"}}}}}},
		ingresses: []*networkingv1.Ingress{{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "i"},
			Spec: networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{SecretName: "tls"}}}}},
	}
	n := NewNode(src, testNodeRules)
	res := func(verb, resource, ns, name string) Attributes {
		return Attributes{ResourceRequest: true, Verb: verb, Resource: resource, Namespace: ns, Name: name}
	}
	tests := []struct {
		name string
		user *authn.User
		a    Attributes
		want Decision
	}{
		{"own pod's secret volume", nodeUser("node-a"), res("get", "secrets", "ns", "secret-a"), Allow},
		{"own pod's env secret, watched by name", nodeUser("node-a"), res("watch", "secrets", "ns", "env-secret"), Allow},
		{"another node's pod's secret", nodeUser("node-a"), res("get", "secrets", "ns", "secret-b"), NoOpinion},
		{"secret in another namespace", nodeUser("node-a"), res("get", "secrets", "other", "secret-a"), NoOpinion},
		{"listing every secret", nodeUser("node-a"), res("list", "secrets", "", ""), NoOpinion},
		{"writing a used secret", nodeUser("node-a"), res("update", "secrets", "ns", "secret-a"), NoOpinion},
		{"projected configmap", nodeUser("node-a"), res("get", "configmaps", "ns", "kube-root-ca.crt"), Allow},
		{"claim of own pod", nodeUser("node-a"), res("get", "persistentvolumeclaims", "ns", "claim-a"), Allow},
		{"volume of own pod's claim", nodeUser("node-a"), res("get", "persistentvolumes", "", "pv-a"), Allow},
		{"CSI stage secret of own pod's volume, in the driver's namespace", nodeUser("node-a"), res("get", "secrets", "driver-ns", "stage-secret"), Allow},
		{"CSI publish secret of own pod's volume", nodeUser("node-a"), res("get", "secrets", "ns", "publish-secret"), Allow},
		{"CSI secret of another node's volume", nodeUser("node-b"), res("get", "secrets", "driver-ns", "stage-secret"), NoOpinion},
		{"CSI secret name in the wrong namespace", nodeUser("node-a"), res("get", "secrets", "ns", "stage-secret"), NoOpinion},
		{"volume of nobody", nodeUser("node-b"), res("get", "persistentvolumes", "", "pv-a"), NoOpinion},
		{"token for own pod's service account", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "ns", Name: "sa-a"}, Allow},
		{"token for another service account", nodeUser("node-b"), Attributes{ResourceRequest: true, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "ns", Name: "sa-a"}, NoOpinion},
		{"get own pod's service account", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "get", Resource: "serviceaccounts", Namespace: "ns", Name: "sa-a"}, Allow},
		{"get another node's pod's service account", nodeUser("node-b"), Attributes{ResourceRequest: true, Verb: "get", Resource: "serviceaccounts", Namespace: "ns", Name: "sa-a"}, NoOpinion},
		{"get unrelated service account", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "get", Resource: "serviceaccounts", Namespace: "ns", Name: "other"}, NoOpinion},
		{"list service accounts", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "list", Resource: "serviceaccounts", Namespace: "ns"}, NoOpinion},
		{"ingress TLS secret", nodeUser("node-b"), res("get", "secrets", "web", "tls"), Allow},
		{"own DNS slice", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "update", APIGroup: "discovery.k8s.io", Resource: "endpointslices", Namespace: "kube-system", Name: "kube-dns-node-a"}, Allow},
		{"another node's DNS slice", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "update", APIGroup: "discovery.k8s.io", Resource: "endpointslices", Namespace: "kube-system", Name: "kube-dns-node-b"}, NoOpinion},
		{"a service's slice", nodeUser("node-a"), Attributes{ResourceRequest: true, Verb: "delete", APIGroup: "discovery.k8s.io", Resource: "endpointslices", Namespace: "default", Name: "kubernetes"}, NoOpinion},
		{"reading nodes by rule", nodeUser("node-a"), res("list", "nodes", "", ""), Allow},
		{"deleting namespaces", nodeUser("node-a"), res("delete", "namespaces", "ns", "ns"), NoOpinion},
		{"not a node", &authn.User{Name: "system:node:node-a", Groups: []string{"system:authenticated"}}, res("get", "secrets", "ns", "secret-a"), NoOpinion},
		{"services for the proxy", nodeUser("node-a"), res("watch", "services", "", ""), Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.User = tt.user
			got, reason, err := n.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("decision = %v (%s), want %v", got, reason, tt.want)
			}
		})
	}
}

func TestNodeName(t *testing.T) {
	if n, ok := NodeName(nodeUser("x")); !ok || n != "x" {
		t.Errorf("NodeName = %q, %v", n, ok)
	}
	if _, ok := NodeName(&authn.User{Name: "system:node:", Groups: []string{"system:nodes"}}); ok {
		t.Error("empty node name accepted")
	}
	if _, ok := NodeName(&authn.User{Name: "alice", Groups: []string{"system:nodes"}}); ok {
		t.Error("non-node user accepted")
	}
}

// TestNodePodCertificateRequests checks, with the real system:node rules,
// what the kubelet does for a podCertificate projection (read its pod's
// ServiceAccount, create a PodCertificateRequest, read it back), and that a
// node reads no other node's requests: get only of a request naming the
// node in spec.nodeName, list and watch only with the field selector
// spec.nodeName=<node>, as upstream's Node authorizer.
func TestNodePodCertificateRequests(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "sa"}}
	podB := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: "node-b", ServiceAccountName: "sa"}}
	pcrOf := func(name, pod, node string) *certificatesv1.PodCertificateRequest {
		return &certificatesv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Spec: certificatesv1.PodCertificateRequestSpec{PodName: pod, NodeName: types.NodeName(node), SignerName: "example.com/s"}}
	}
	n := NewNode(&fakeNodeSource{pods: []*corev1.Pod{pod, podB},
		pcrs: []*certificatesv1.PodCertificateRequest{pcrOf("p-abcde", "p", "node-a"), pcrOf("q-fghij", "q", "node-b")}},
		bootstrappolicy.NodeRules())
	pcr := func(verb, sub, name string) Attributes {
		return Attributes{User: nodeUser("node-a"), ResourceRequest: true, Verb: verb, APIGroup: "certificates.k8s.io",
			Resource: "podcertificaterequests", Subresource: sub, Namespace: "ns", Name: name}
	}
	selecting := func(verb, ns, sel string) Attributes {
		a := pcr(verb, "", "")
		a.Namespace = ns
		s, err := fields.ParseSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		a.FieldSelector = s.Requirements()
		return a
	}
	named := func(verb, name string) Attributes {
		// A list narrowed by metadata.name carries the name too.
		a := selecting(verb, "ns", "metadata.name="+name)
		a.Name = name
		return a
	}
	for _, tt := range []struct {
		name   string
		a      Attributes
		want   Decision
		reason string
	}{
		{"get the pod's service account", Attributes{User: nodeUser("node-a"), ResourceRequest: true, Verb: "get", Resource: "serviceaccounts", Namespace: "ns", Name: "sa"}, Allow, ""},
		{"create a request", pcr("create", "", ""), Allow, ""},
		{"get own request", pcr("get", "", "p-abcde"), Allow, ""},
		{"get another node's request", pcr("get", "", "q-fghij"), NoOpinion, "no relationship found between node 'node-a' and this object"},
		{"get an unknown request", pcr("get", "", "nope"), NoOpinion, "no relationship found between node 'node-a' and this object"},
		{"get without a name", pcr("get", "", ""), NoOpinion, "No Object name found"},
		{"list own requests everywhere", selecting("list", "", "spec.nodeName=node-a"), Allow, ""},
		{"watch own requests in a namespace", selecting("watch", "ns", "spec.nodeName==node-a,spec.signerName=example.com/s"), Allow, ""},
		{"list without a selector", pcr("list", "", ""), NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector"},
		{"watch without a selector", pcr("watch", "", ""), NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector"},
		{"list another node's requests", selecting("list", "", "spec.nodeName=node-b"), NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector"},
		{"list all but own node's", selecting("list", "", "spec.nodeName!=node-a"), NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector"},
		{"list by another field", selecting("list", "", "spec.podName=p"), NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector"},
		{"list own request by name", named("list", "p-abcde"), NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector"},
		{"write a request's status", pcr("update", "status", "p-abcde"), NoOpinion, "nodes may not access the status subresource of PodCertificateRequests"},
		{"get a request's status", pcr("get", "status", "p-abcde"), NoOpinion, "nodes may not access the status subresource of PodCertificateRequests"},
		{"update own request", pcr("update", "", "p-abcde"), NoOpinion, "nodes may not update podcertificaterequests"},
		{"delete own request", pcr("delete", "", "p-abcde"), NoOpinion, "nodes may not delete podcertificaterequests"},
		{"deletecollection of own requests", selecting("deletecollection", "ns", "spec.nodeName=node-a"), NoOpinion, "nodes may not deletecollection podcertificaterequests"},
	} {
		got, reason, err := n.Authorize(context.Background(), tt.a)
		if err != nil || got != tt.want || reason != tt.reason {
			t.Errorf("%s: decision = %v (%q, %v), want %v (%q)", tt.name, got, reason, err, tt.want, tt.reason)
		}
	}
}
