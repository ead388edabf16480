package csrapproving

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/controllers/csrsigning"
)

const servingMessage = "Auto approving kubelet serving certificate for the node's own name and addresses."

// reconcileServing approves a node's kubelet serving certificate, which
// upstream leaves to a human or a third-party approver. Skiff approves it,
// as k3s issues it, when the node asks for itself (requestor
// system:node:<name> equal to the CN) and every name in it is the node's:
// DNS names are the node's name or hostname addresses; IP addresses are
// among the Node's addresses or, before the node has registered, claimed
// by no other Node.
func (a *approver) reconcileServing(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	req, err := csrsigning.ParseRequest(csr.Spec.Request)
	if err != nil || csrsigning.ValidateKubeletServing(req, csr.Spec.Usages) != nil {
		return nil
	}
	if csr.Spec.Username != req.Subject.CommonName || !slices.Contains(csr.Spec.Groups, csrsigning.NodesGroup) {
		return nil
	}
	name := strings.TrimPrefix(req.Subject.CommonName, csrsigning.NodeUserPrefix)
	nodes, err := a.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes for %s: %w", csr.Name, err)
	}
	if !ownNames(req, name, nodes.Items) {
		return nil
	}
	return a.approve(ctx, csr, servingMessage)
}

// ownNames reports whether every subject alternative name of req belongs
// to node name.
func ownNames(req *x509.CertificateRequest, name string, nodes []corev1.Node) bool {
	dns := []string{name}
	var ips, others []net.IP
	registered := false
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			ip := net.ParseIP(a.Address)
			switch {
			case n.Name != name && ip != nil:
				others = append(others, ip)
			case n.Name != name:
			case ip != nil:
				ips = append(ips, ip)
			case a.Type == corev1.NodeHostName || a.Type == corev1.NodeInternalDNS || a.Type == corev1.NodeExternalDNS:
				dns = append(dns, a.Address)
			}
		}
		registered = registered || n.Name == name
	}
	for _, d := range req.DNSNames {
		if !slices.Contains(dns, d) {
			return false
		}
	}
	has := func(list []net.IP, ip net.IP) bool {
		return slices.ContainsFunc(list, func(x net.IP) bool { return x.Equal(ip) })
	}
	for _, ip := range req.IPAddresses {
		if registered && !has(ips, ip) || !registered && has(others, ip) {
			return false
		}
	}
	return true
}
