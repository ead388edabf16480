package manager

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedbatchv1 "k8s.io/client-go/kubernetes/typed/batch/v1"
	typeddiscoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	"k8s.io/client-go/rest"
)

// identity is how a controller reaches the API server.
type identity struct {
	client kubernetes.Interface
	config *rest.Config // for dynamic and metadata clients
}

// identities gives each controller ServiceAccount its identity: its own
// credentials, or the manager's when builder is nil.
type identities struct {
	builder *ClientBuilder
	own     identity
}

// as returns the identity of ServiceAccount kube-system/sa.
func (ids identities) as(sa string) (identity, error) {
	if ids.builder == nil {
		return ids.own, nil
	}
	client, err := ids.builder.Client(sa)
	if err != nil {
		return identity{}, err
	}
	return identity{client: client, config: ids.builder.Config(sa)}, nil
}

// withDiscoveryV1 sends EndpointSlice requests through slices and
// everything else through client: the endpoints controller maintains both
// kinds, which upstream splits between two controllers and identities.
func withDiscoveryV1(client, slices kubernetes.Interface) kubernetes.Interface {
	return discoverySplit{Interface: client, slices: slices}
}

type discoverySplit struct {
	kubernetes.Interface
	slices kubernetes.Interface
}

func (c discoverySplit) DiscoveryV1() typeddiscoveryv1.DiscoveryV1Interface {
	return c.slices.DiscoveryV1()
}

// withJobDeletes sends deletions of Jobs through ttl and everything else
// through client: the job controller also expires finished Jobs, which
// upstream's ttl-after-finished controller does under its own identity.
func withJobDeletes(client, ttl kubernetes.Interface) kubernetes.Interface {
	return jobSplit{Interface: client, ttl: ttl}
}

type jobSplit struct {
	kubernetes.Interface
	ttl kubernetes.Interface
}

func (c jobSplit) BatchV1() typedbatchv1.BatchV1Interface {
	return batchSplit{BatchV1Interface: c.Interface.BatchV1(), ttl: c.ttl.BatchV1()}
}

type batchSplit struct {
	typedbatchv1.BatchV1Interface
	ttl typedbatchv1.BatchV1Interface
}

func (c batchSplit) Jobs(namespace string) typedbatchv1.JobInterface {
	return jobDeletes{JobInterface: c.BatchV1Interface.Jobs(namespace), ttl: c.ttl.Jobs(namespace)}
}

type jobDeletes struct {
	typedbatchv1.JobInterface
	ttl typedbatchv1.JobInterface
}

func (c jobDeletes) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return c.ttl.Delete(ctx, name, opts)
}

// Compile-time check that the split still satisfies the typed interface.
var _ typedbatchv1.JobInterface = jobDeletes{}
