package apiserver

import (
	"net/http/httptest"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// TestRequestAttributes: what authorizers are told about a request, as
// upstream's RequestInfo derives it from the method and URL.
func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		method, url string
		want        authz.Attributes
	}{
		{"GET", "/api/v1/namespaces/ns/pods", authz.Attributes{ResourceRequest: true, Verb: "list", APIVersion: "v1", Namespace: "ns", Resource: "pods"}},
		{"GET", "/api/v1/pods?watch=true", authz.Attributes{ResourceRequest: true, Verb: "watch", APIVersion: "v1", Resource: "pods"}},
		{"GET", "/api/v1/namespaces/ns/secrets?fieldSelector=metadata.name%3Ds1&watch=1", authz.Attributes{ResourceRequest: true, Verb: "watch", APIVersion: "v1", Namespace: "ns", Resource: "secrets", Name: "s1",
			FieldSelector: fields.Requirements{{Operator: selection.Equals, Field: "metadata.name", Value: "s1"}}}},
		// The Node authorizer judges a node's list by its field selector.
		{"GET", "/apis/certificates.k8s.io/v1/podcertificaterequests?fieldSelector=spec.nodeName%3Dn1", authz.Attributes{ResourceRequest: true, Verb: "list", APIGroup: "certificates.k8s.io", APIVersion: "v1", Resource: "podcertificaterequests",
			FieldSelector: fields.Requirements{{Operator: selection.Equals, Field: "spec.nodeName", Value: "n1"}}}},
		{"GET", "/apis/certificates.k8s.io/v1/namespaces/ns/podcertificaterequests?watch=true&fieldSelector=spec.nodeName%3D%3Dn1,spec.signerName!%3Dx", authz.Attributes{ResourceRequest: true, Verb: "watch", APIGroup: "certificates.k8s.io", APIVersion: "v1", Namespace: "ns", Resource: "podcertificaterequests",
			FieldSelector: fields.Requirements{{Operator: selection.Equals, Field: "spec.nodeName", Value: "n1"}, {Operator: selection.NotEquals, Field: "spec.signerName", Value: "x"}}}},
		{"DELETE", "/apis/resource.k8s.io/v1/resourceslices?fieldSelector=spec.nodeName%3Dn1", authz.Attributes{ResourceRequest: true, Verb: "deletecollection", APIGroup: "resource.k8s.io", APIVersion: "v1", Resource: "resourceslices",
			FieldSelector: fields.Requirements{{Operator: selection.Equals, Field: "spec.nodeName", Value: "n1"}}}},
		{"GET", "/api/v1/pods?fieldSelector=spec.nodeName", authz.Attributes{ResourceRequest: true, Verb: "list", APIVersion: "v1", Resource: "pods"}},
		{"GET", "/api/v1/namespaces/ns/pods/p", authz.Attributes{ResourceRequest: true, Verb: "get", APIVersion: "v1", Namespace: "ns", Resource: "pods", Name: "p"}},
		{"POST", "/apis/apps/v1/namespaces/ns/deployments", authz.Attributes{ResourceRequest: true, Verb: "create", APIGroup: "apps", APIVersion: "v1", Namespace: "ns", Resource: "deployments"}},
		{"PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", authz.Attributes{ResourceRequest: true, Verb: "update", APIGroup: "apps", APIVersion: "v1", Namespace: "ns", Resource: "deployments", Name: "d", Subresource: "scale"}},
		{"PATCH", "/api/v1/nodes/n1/status", authz.Attributes{ResourceRequest: true, Verb: "patch", APIVersion: "v1", Resource: "nodes", Name: "n1", Subresource: "status"}},
		{"DELETE", "/api/v1/namespaces/ns/configmaps", authz.Attributes{ResourceRequest: true, Verb: "deletecollection", APIVersion: "v1", Namespace: "ns", Resource: "configmaps"}},
		{"DELETE", "/api/v1/namespaces/ns", authz.Attributes{ResourceRequest: true, Verb: "delete", APIVersion: "v1", Namespace: "ns", Resource: "namespaces", Name: "ns"}},
		{"GET", "/api/v1/nodes/n1/proxy/stats/summary", authz.Attributes{ResourceRequest: true, Verb: "get", APIVersion: "v1", Resource: "nodes", Name: "n1", Subresource: "proxy"}},
		{"POST", "/api/v1/namespaces/ns/pods/p/exec?command=sh", authz.Attributes{ResourceRequest: true, Verb: "create", APIVersion: "v1", Namespace: "ns", Resource: "pods", Name: "p", Subresource: "exec"}},
		{"GET", "/version", authz.Attributes{Verb: "get", Path: "/version"}},
		{"GET", "/apis/apps/v1", authz.Attributes{Verb: "get", Path: "/apis/apps/v1"}},
	}
	for _, tt := range tests {
		got := requestAttributes(httptest.NewRequest(tt.method, tt.url, nil), nil)
		if tt.want.ResourceRequest {
			tt.want.Path = got.Path // carried along; only non-resource requests are judged by it
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tt.method, tt.url, got, tt.want)
		}
	}
}
