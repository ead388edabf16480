package differential

import (
	"k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// The mutation walk decodes the valid objects with client-go's scheme,
// which lacks the aggregator's APIService.
func init() {
	if err := apiregistrationv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}
