package dns

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// ServiceNamespace and ServiceName locate the cluster DNS Service, which
// the API server creates without a selector.
const (
	ServiceNamespace = "kube-system"
	ServiceName      = "kube-dns"
	managedBy        = "skiff-dns"
)

// Publish makes this node's DNS server an endpoint of the cluster DNS
// Service (an EndpointSlice per node), retrying until ctx ends.
func Publish(ctx context.Context, client kubernetes.Interface, node string, addr net.Addr) error {
	host, portStr, err := net.SplitHostPort(addr.String())
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portStr)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "kube-dns-" + node, Namespace: ServiceNamespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: ServiceName,
				discoveryv1.LabelManagedBy:   managedBy,
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{host},
			NodeName:   ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		}},
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Port: ptr.To(int32(port)), Protocol: ptr.To(v1.ProtocolUDP)},
			{Name: ptr.To("dns-tcp"), Port: ptr.To(int32(port)), Protocol: ptr.To(v1.ProtocolTCP)},
		},
	}
	slices := client.DiscoveryV1().EndpointSlices(ServiceNamespace)
	for {
		cur, err := slices.Get(ctx, slice.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = slices.Create(ctx, slice, metav1.CreateOptions{})
		case err == nil:
			cur.Endpoints, cur.Ports, cur.Labels = slice.Endpoints, slice.Ports, slice.Labels
			_, err = slices.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("publish DNS endpoint: %w", err)
		case <-time.After(time.Second):
		}
	}
}
