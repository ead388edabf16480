package authz

import corev1 "k8s.io/api/core/v1"

// podUsesResourceClaim: a node reads the ResourceClaims of its pods, named
// directly in the pod spec or generated from a template (the pod's status
// names those), as upstream's Node authorizer graph does.
func (n *Node) podUsesResourceClaim(a Attributes, node string) bool {
	return n.anyPod(a, node, func(p *corev1.Pod) bool {
		for _, c := range p.Spec.ResourceClaims {
			if c.ResourceClaimName != nil && *c.ResourceClaimName == a.Name {
				return true
			}
		}
		for _, s := range p.Status.ResourceClaimStatuses {
			if s.ResourceClaimName != nil && *s.ResourceClaimName == a.Name {
				return true
			}
		}
		return false
	})
}
