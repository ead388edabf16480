package admission

import (
	"context"
	"fmt"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// PodGetter finds a pod by namespace and name.
type PodGetter func(namespace, name string) (*corev1.Pod, bool)

// NodeRestriction limits what a node's credential may change to the node
// itself, its Lease, and the pods bound to it, as upstream's plugin of the
// same name.
type NodeRestriction struct {
	pod PodGetter
}

// NewNodeRestriction builds the plugin; pods are looked up with pod.
func NewNodeRestriction(pod PodGetter) *NodeRestriction { return &NodeRestriction{pod: pod} }

// Name implements Validator.
func (*NodeRestriction) Name() string { return "NodeRestriction" }

// mirrorPodAnnotation marks the API copy of a kubelet's static pod.
const mirrorPodAnnotation = "kubernetes.io/config.mirror"

// nodeLabelPrefix is the label namespace reserved for administrators:
// a node cannot label itself into workloads meant for others.
const nodeLabelPrefix = "node-restriction.kubernetes.io/"

// Validate implements Validator.
func (p *NodeRestriction) Validate(_ context.Context, a *Attributes) error {
	node, ok := authz.NodeName(a.User)
	if !ok {
		return nil
	}
	gr := a.Resource.GroupResource()
	switch {
	case gr == schema.GroupResource{Resource: "pods"}:
		return p.pods(a, node)
	case gr == schema.GroupResource{Resource: "nodes"}:
		return nodes(a, node)
	case gr == schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}:
		if a.Namespace != corev1.NamespaceNodeLease {
			return forbidden(a, fmt.Errorf("can only access leases in the %s namespace", corev1.NamespaceNodeLease))
		}
		if a.Name != node {
			return forbidden(a, fmt.Errorf("can only access node lease with the same name as the requesting node"))
		}
		if l, ok := a.Object.(*coordinationv1.Lease); ok && len(l.OwnerReferences) > 0 {
			for _, ref := range l.OwnerReferences {
				if ref.Kind != "Node" || ref.Name != node {
					return forbidden(a, fmt.Errorf("can only set the owner of its lease to itself"))
				}
			}
		}
	case gr == schema.GroupResource{Resource: "serviceaccounts"} && a.Subresource == "token":
		return p.token(a, node)
	case gr == schema.GroupResource{Group: "certificates.k8s.io", Resource: "podcertificaterequests"}:
		return p.podCertificateRequest(a, node)
	case gr == schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}:
		// The Node authorizer lets a node publish its DNS server; the name
		// of a created slice is only known here.
		if want := authz.DNSSlicePrefix + node; a.Namespace != "kube-system" || a.Name != want {
			return forbidden(a, fmt.Errorf("node %q may only write the EndpointSlice kube-system/%s", node, want))
		}
	}
	return nil
}

func (p *NodeRestriction) pods(a *Attributes, node string) error {
	switch a.Subresource {
	case "":
		switch a.Operation {
		case Create:
			pod, _ := a.Object.(*corev1.Pod)
			if pod == nil {
				return nil
			}
			if _, ok := pod.Annotations[mirrorPodAnnotation]; !ok {
				return forbidden(a, fmt.Errorf("pod does not have %q annotation, node %q can only create mirror pods", mirrorPodAnnotation, node))
			}
			if pod.Spec.NodeName != node {
				return forbidden(a, fmt.Errorf("node %q can only create pods with spec.nodeName set to itself", node))
			}
		case Delete, Update:
			return boundHere(a, a.OldObject, node)
		}
	case "status", "eviction", "ephemeralcontainers", "resize":
		old := a.OldObject
		if old == nil && p.pod != nil {
			if pod, ok := p.pod(a.Namespace, a.Name); ok {
				old = pod
			}
		}
		return boundHere(a, old, node)
	}
	return nil
}

// boundHere refuses a write to a pod that is not bound to node.
func boundHere(a *Attributes, obj any, node string) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod == nil {
		return forbidden(a, fmt.Errorf("node %q can only modify pods bound to it", node))
	}
	if pod.Spec.NodeName != node {
		return forbidden(a, fmt.Errorf("node %q can only modify pods with spec.nodeName set to itself", node))
	}
	return nil
}

func nodes(a *Attributes, node string) error {
	if a.Name != node {
		return forbidden(a, fmt.Errorf("node %q is not allowed to modify node %q", node, a.Name))
	}
	n, _ := a.Object.(*corev1.Node)
	if n == nil {
		return nil
	}
	old, _ := a.OldObject.(*corev1.Node)
	for k, v := range n.Labels {
		if !strings.HasPrefix(k, nodeLabelPrefix) {
			continue
		}
		if old == nil || old.Labels[k] != v {
			return forbidden(a, fmt.Errorf("is not allowed to modify labels: %s", k))
		}
	}
	if old != nil {
		for k := range old.Labels {
			if _, kept := n.Labels[k]; strings.HasPrefix(k, nodeLabelPrefix) && !kept {
				return forbidden(a, fmt.Errorf("is not allowed to modify labels: %s", k))
			}
		}
	}
	return nil
}

// token allows a node to ask only for tokens bound to its own pods.
func (p *NodeRestriction) token(a *Attributes, node string) error {
	tr, ok := a.Object.(*authenticationv1.TokenRequest)
	if !ok {
		return nil
	}
	ref := tr.Spec.BoundObjectRef
	if ref == nil || ref.Kind != "Pod" {
		return forbidden(a, fmt.Errorf("node requested token not bound to a pod"))
	}
	if p.pod == nil {
		return forbidden(a, fmt.Errorf("cannot look up pod %s/%s", a.Namespace, ref.Name))
	}
	pod, found := p.pod(a.Namespace, ref.Name)
	if !found {
		return forbidden(a, fmt.Errorf("node requested token bound to a pod that does not exist"))
	}
	if pod.Spec.NodeName != node {
		return forbidden(a, fmt.Errorf("node requested token bound to a pod scheduled on a different node"))
	}
	if ref.UID != "" && ref.UID != pod.UID {
		return forbidden(a, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s)", ref.UID, pod.UID))
	}
	if pod.Spec.ServiceAccountName != a.Name {
		return forbidden(a, fmt.Errorf("node requested token for service account %q not used by pod %s/%s", a.Name, pod.Namespace, pod.Name))
	}
	return nil
}

// podCertificateRequest lets a node only create requests for the
// podCertificate volumes of its own pods, as upstream's plugin: the node
// named is the requesting one, and the pod (by name and UID) is bound to
// it, is not a mirror pod, runs as the ServiceAccount named and projects
// a certificate of the signer named.
func (p *NodeRestriction) podCertificateRequest(a *Attributes, node string) error {
	if a.Operation != Create || a.Subresource != "" {
		return forbidden(a, fmt.Errorf("node %q may only create PodCertificateRequests", node))
	}
	req, ok := a.Object.(*certificatesv1.PodCertificateRequest)
	if !ok {
		return forbidden(a, fmt.Errorf("unexpected type %T", a.Object))
	}
	spec := &req.Spec
	if string(spec.NodeName) != node {
		return forbidden(a, fmt.Errorf("PodCertificateRequest.Spec.NodeName=%q, which is not the requesting node %q", spec.NodeName, node))
	}
	podName := a.Namespace + "/" + spec.PodName
	if p.pod == nil {
		return forbidden(a, fmt.Errorf("cannot look up pod %s", podName))
	}
	pod, found := p.pod(a.Namespace, spec.PodName)
	switch {
	case !found:
		return forbidden(a, fmt.Errorf("pod %q named in the PodCertificateRequest does not exist", podName))
	case pod.UID != spec.PodUID:
		return forbidden(a, fmt.Errorf("PodCertificateRequest for pod %q contains pod UID %q, which differs from the running pod's %q", podName, spec.PodUID, pod.UID))
	case pod.Spec.NodeName != node:
		return forbidden(a, fmt.Errorf("pod %q is not running on node %q named in the PodCertificateRequest", podName, node))
	}
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return forbidden(a, fmt.Errorf("pod %q is a mirror pod", podName))
	}
	if spec.ServiceAccountName != pod.Spec.ServiceAccountName {
		return forbidden(a, fmt.Errorf("PodCertificateRequest for pod %q contains serviceAccountName %q that differs from the running pod's %q", podName, spec.ServiceAccountName, pod.Spec.ServiceAccountName))
	}
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.PodCertificate != nil && src.PodCertificate.SignerName == spec.SignerName {
				return nil
			}
		}
	}
	return forbidden(a, fmt.Errorf("pod %q does not mount a podCertificate projected volume for signer %q", podName, spec.SignerName))
}

// forbidden is admission's 403 for the object of a.
func forbidden(a *Attributes, err error) error {
	gr := a.Resource.GroupResource()
	if a.Subresource != "" {
		gr.Resource += "/" + a.Subresource
	}
	return apierrors.NewForbidden(gr, a.Name, err)
}
