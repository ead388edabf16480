package authz

import (
	"context"
	"fmt"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// NodesGroup is the group of every node's credential.
const NodesGroup = "system:nodes"

const nodeUserPrefix = "system:node:"

// NodeName returns the node a user is, if the user is a node's credential
// (system:node:<name> in system:nodes).
func NodeName(u *authn.User) (string, bool) {
	if u == nil || !strings.HasPrefix(u.Name, nodeUserPrefix) {
		return "", false
	}
	for _, g := range u.Groups {
		if g == NodesGroup {
			name := strings.TrimPrefix(u.Name, nodeUserPrefix)
			return name, name != ""
		}
	}
	return "", false
}

// NodeSource is what the Node authorizer reads: the pods bound to a node
// and the objects they use, from the API server's watch caches. Returned
// objects are shared and read-only.
type NodeSource interface {
	// PodsOnNode calls fn for each pod bound to node in namespace, until fn
	// returns false.
	PodsOnNode(node, namespace string, fn func(*corev1.Pod) bool)
	GetPersistentVolumeClaim(namespace, name string) (*corev1.PersistentVolumeClaim, bool)
	GetPersistentVolume(name string) (*corev1.PersistentVolume, bool)
	// IngressesIn lists the Ingresses of a namespace.
	IngressesIn(namespace string) []*networkingv1.Ingress
	// GetPodCertificateRequest may wait (bounded by ctx) for the cache to
	// catch up before it answers that a request is unknown.
	GetPodCertificateRequest(ctx context.Context, namespace, name string) (*certificatesv1.PodCertificateRequest, bool)
}

// Node authorizes nodes' credentials as upstream's Node authorizer: the
// Secrets, ConfigMaps, claims, volumes and service-account tokens of pods
// bound to the node, and everything the system:node role grants. Skiff's
// node agent also runs the service proxy, cluster DNS and the ingress
// controller under the node's credential; their reads are in
// SkiffNodeRules, and a node may publish only its own DNS EndpointSlice and
// read only the TLS Secrets that Ingresses name (every node serves every
// Ingress).
type Node struct {
	src   NodeSource
	rules []rbacv1.PolicyRule
}

// NewNode builds the Node authorizer; rules are system:node's.
func NewNode(src NodeSource, rules []rbacv1.PolicyRule) *Node {
	return &Node{src: src, rules: append(append([]rbacv1.PolicyRule{}, rules...), SkiffNodeRules...)}
}

// SkiffNodeRules are what the node agent's proxy, DNS and ingress
// controller read beyond upstream's system:node rules.
var SkiffNodeRules = []rbacv1.PolicyRule{
	{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"services", "endpoints", "namespaces"}},
	{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}},
	{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "ingressclasses"}},
}

// DNSSlicePrefix names the EndpointSlice through which a node publishes its
// DNS server in kube-system (kube-dns-<node>).
const DNSSlicePrefix = "kube-dns-"

// Authorize implements Authorizer.
func (n *Node) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	node, ok := NodeName(a.User)
	if !ok {
		return NoOpinion, "", nil
	}
	if !a.ResourceRequest {
		return n.byRules(a)
	}
	switch {
	case a.APIGroup == "" && a.Resource == "secrets":
		return n.related(a, node, n.podUsesSecret, n.volumeUsesSecret, n.ingressUsesSecret)
	case a.APIGroup == "" && a.Resource == "configmaps":
		return n.related(a, node, n.podUsesConfigMap)
	case a.APIGroup == "" && a.Resource == "persistentvolumeclaims":
		return n.related(a, node, n.podUsesClaim)
	case a.APIGroup == "" && a.Resource == "persistentvolumes":
		return n.relatedVolume(a, node)
	case a.APIGroup == "resource.k8s.io" && a.Resource == "resourceclaims":
		return n.related(a, node, n.podUsesResourceClaim)
	case a.APIGroup == "" && a.Resource == "serviceaccounts" && a.Subresource == "token":
		if a.Verb != "create" {
			return NoOpinion, "", nil
		}
		return n.related(a, node, n.podUsesServiceAccount)
	case a.APIGroup == "" && a.Resource == "serviceaccounts" && a.Subresource == "" && a.Verb == "get":
		// The kubelet names the UID of a pod's ServiceAccount in its
		// PodCertificateRequests, so it reads the ServiceAccounts of its
		// pods, as upstream's Node authorizer allows.
		if a.Name != "" && n.podUsesServiceAccount(a, node) {
			return Allow, "", nil
		}
		return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
	case a.APIGroup == certificatesv1.GroupName && a.Resource == "podcertificaterequests":
		return n.podCertificateRequest(ctx, a, node)
	case a.APIGroup == "discovery.k8s.io" && a.Resource == "endpointslices" && isWrite(a.Verb):
		if a.Namespace == "kube-system" && (a.Name == DNSSlicePrefix+node || (a.Verb == "create" && a.Name == "")) {
			return Allow, "", nil
		}
		return NoOpinion, fmt.Sprintf("node %q may only publish the EndpointSlice %s%s", node, DNSSlicePrefix, node), nil
	}
	return n.byRules(a)
}

// podCertificateRequest authorizes a node's PodCertificateRequests as
// upstream does: it creates them (NodeRestriction checks that the request
// names this node and a pod, service account and node that match), reads
// one whose spec.nodeName is this node, and lists or watches only with a
// spec.nodeName=<node> field selector. Nothing else, not even through
// system:node's rules.
func (n *Node) podCertificateRequest(ctx context.Context, a Attributes, node string) (Decision, string, error) {
	if a.Subresource != "" {
		return NoOpinion, "nodes may not access the status subresource of PodCertificateRequests", nil
	}
	switch a.Verb {
	case "create":
		return Allow, "", nil
	case "get":
		if a.Name == "" {
			return NoOpinion, "No Object name found", nil
		}
		if pcr, ok := n.src.GetPodCertificateRequest(ctx, a.Namespace, a.Name); ok && string(pcr.Spec.NodeName) == node {
			return Allow, "", nil
		}
		return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
	case "list", "watch":
		if selectsNode(a.FieldSelector, "spec.nodeName", node) {
			return Allow, "", nil
		}
		return NoOpinion, "can only list/watch podcertificaterequests with nodeName field selector", nil
	}
	return NoOpinion, fmt.Sprintf("nodes may not %s podcertificaterequests", a.Verb), nil
}

// selectsNode reports whether a field selector requires field to equal node
// (a selector ANDs its terms, so that one term limits the whole request).
func selectsNode(sel fields.Requirements, field, node string) bool {
	for _, r := range sel {
		if r.Field == field && r.Operator == selection.Equals && r.Value == node {
			return true
		}
	}
	return false
}

func (n *Node) byRules(a Attributes) (Decision, string, error) {
	if RulesAllow(a, n.rules...) {
		return Allow, "", nil
	}
	return NoOpinion, "", nil
}

func isWrite(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

// related allows reading a named object (get, or list/watch narrowed to it)
// when one of uses finds a relationship between the node and the object.
func (n *Node) related(a Attributes, node string, uses ...func(a Attributes, node string) bool) (Decision, string, error) {
	if a.Name == "" {
		return NoOpinion, "can only read individual objects by name", nil
	}
	switch a.Verb {
	case "get", "list", "watch":
	case "create":
		if a.Subresource != "token" {
			return NoOpinion, "", nil
		}
	default:
		return NoOpinion, "", nil
	}
	for _, use := range uses {
		if use(a, node) {
			if a.Subresource == "token" || RulesAllow(a, n.rules...) {
				return Allow, "", nil
			}
		}
	}
	return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
}

// anyPod reports whether a pod on node in the request's namespace uses the
// object, as judged by uses.
func (n *Node) anyPod(a Attributes, node string, uses func(*corev1.Pod) bool) bool {
	found := false
	n.src.PodsOnNode(node, a.Namespace, func(p *corev1.Pod) bool {
		found = uses(p)
		return !found
	})
	return found
}

func (n *Node) podUsesSecret(a Attributes, node string) bool {
	return n.anyPod(a, node, func(p *corev1.Pod) bool { return podReferences(p, "secret", a.Name) })
}

func (n *Node) podUsesConfigMap(a Attributes, node string) bool {
	return n.anyPod(a, node, func(p *corev1.Pod) bool { return podReferences(p, "configmap", a.Name) })
}

func (n *Node) podUsesClaim(a Attributes, node string) bool {
	return n.anyPod(a, node, func(p *corev1.Pod) bool { return podReferences(p, "pvc", a.Name) })
}

func (n *Node) podUsesServiceAccount(a Attributes, node string) bool {
	return n.anyPod(a, node, func(p *corev1.Pod) bool { return podReferences(p, "serviceaccount", a.Name) })
}

func (n *Node) ingressUsesSecret(a Attributes, _ string) bool {
	if a.Verb != "get" && a.Verb != "list" && a.Verb != "watch" {
		return false
	}
	for _, ing := range n.src.IngressesIn(a.Namespace) {
		for _, t := range ing.Spec.TLS {
			if t.SecretName == a.Name {
				return true
			}
		}
	}
	return false
}

func (n *Node) relatedVolume(a Attributes, node string) (Decision, string, error) {
	if a.Verb != "get" || a.Name == "" {
		return NoOpinion, "", nil
	}
	if n.anyVolume(node, func(name string) bool { return name == a.Name }) {
		return Allow, "", nil
	}
	return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
}

// volumeUsesSecret reports whether a PersistentVolume claimed by a pod on
// node names the Secret (a CSI driver's stage, publish or expand secrets),
// which the kubelet must read to mount it; the Secret may live in another
// namespace than the pod.
func (n *Node) volumeUsesSecret(a Attributes, node string) bool {
	return n.anyVolume(node, func(name string) bool {
		pv, ok := n.src.GetPersistentVolume(name)
		return ok && pvSecretRefs(pv, func(ref *corev1.SecretReference) bool {
			return ref.Namespace == a.Namespace && ref.Name == a.Name
		})
	})
}

// anyVolume reports whether match holds for the name of a volume bound to a
// claim of a pod on node.
func (n *Node) anyVolume(node string, match func(pvName string) bool) bool {
	found := false
	n.src.PodsOnNode(node, "", func(p *corev1.Pod) bool {
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim == nil {
				continue
			}
			if pvc, ok := n.src.GetPersistentVolumeClaim(p.Namespace, v.PersistentVolumeClaim.ClaimName); ok && pvc.Spec.VolumeName != "" && match(pvc.Spec.VolumeName) {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// pvSecretRefs reports whether match holds for one of the Secrets a
// volume's CSI source names.
func pvSecretRefs(pv *corev1.PersistentVolume, match func(*corev1.SecretReference) bool) bool {
	csi := pv.Spec.CSI
	if csi == nil {
		return false
	}
	for _, ref := range []*corev1.SecretReference{csi.NodeStageSecretRef, csi.NodePublishSecretRef, csi.NodeExpandSecretRef,
		csi.ControllerPublishSecretRef, csi.ControllerExpandSecretRef} {
		if ref != nil && match(ref) {
			return true
		}
	}
	return false
}

// podReferences reports whether pod refers to the named object of kind
// "secret", "configmap", "pvc" or "serviceaccount" anywhere the kubelet
// would read it: volumes (also projected), env, envFrom, image pull
// secrets.
func podReferences(p *corev1.Pod, kind, name string) bool {
	switch kind {
	case "serviceaccount":
		return p.Spec.ServiceAccountName == name
	case "secret":
		for _, s := range p.Spec.ImagePullSecrets {
			if s.Name == name {
				return true
			}
		}
	}
	for i := range p.Spec.Volumes {
		v := &p.Spec.Volumes[i]
		switch {
		case kind == "secret" && v.Secret != nil && v.Secret.SecretName == name,
			kind == "configmap" && v.ConfigMap != nil && v.ConfigMap.Name == name,
			kind == "pvc" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name:
			return true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if kind == "secret" && src.Secret != nil && src.Secret.Name == name ||
					kind == "configmap" && src.ConfigMap != nil && src.ConfigMap.Name == name {
					return true
				}
			}
		case v.Ephemeral != nil && kind == "pvc" && name == p.Name+"-"+v.Name:
			return true
		case kind == "secret":
			if ref := volumeSecretRef(v); ref == name {
				return true
			}
		}
	}
	if kind == "pvc" {
		return false
	}
	found := false
	visitContainers(p, func(c *corev1.Container) bool {
		for _, from := range c.EnvFrom {
			if kind == "secret" && from.SecretRef != nil && from.SecretRef.Name == name ||
				kind == "configmap" && from.ConfigMapRef != nil && from.ConfigMapRef.Name == name {
				found = true
				return false
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if kind == "secret" && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name ||
				kind == "configmap" && e.ValueFrom.ConfigMapKeyRef != nil && e.ValueFrom.ConfigMapKeyRef.Name == name {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// volumeSecretRef is the Secret a volume plugin reads credentials from.
func volumeSecretRef(v *corev1.Volume) string {
	switch {
	case v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
		return v.CSI.NodePublishSecretRef.Name
	case v.ISCSI != nil && v.ISCSI.SecretRef != nil:
		return v.ISCSI.SecretRef.Name
	case v.RBD != nil && v.RBD.SecretRef != nil:
		return v.RBD.SecretRef.Name
	case v.CephFS != nil && v.CephFS.SecretRef != nil:
		return v.CephFS.SecretRef.Name
	case v.FlexVolume != nil && v.FlexVolume.SecretRef != nil:
		return v.FlexVolume.SecretRef.Name
	case v.AzureFile != nil:
		return v.AzureFile.SecretName
	}
	return ""
}

func visitContainers(p *corev1.Pod, fn func(*corev1.Container) bool) {
	for i := range p.Spec.InitContainers {
		if !fn(&p.Spec.InitContainers[i]) {
			return
		}
	}
	for i := range p.Spec.Containers {
		if !fn(&p.Spec.Containers[i]) {
			return
		}
	}
	for i := range p.Spec.EphemeralContainers {
		if !fn((*corev1.Container)(&p.Spec.EphemeralContainers[i].EphemeralContainerCommon)) {
			return
		}
	}
}
