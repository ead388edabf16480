package bootstrappolicy

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

func TestSkiffServiceLBRole(t *testing.T) {
	roles := skiffControllerRoles()
	if len(roles) < 1 || roles[0].Name != "system:controller:skiff-servicelb" {
		t.Fatalf("roles = %v", roles)
	}
	rules := roles[0].Rules
	rr := func(verb, group, resource, sub string) authz.Attributes {
		return authz.Attributes{Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource,
			Subresource: sub, Namespace: "ns", Name: "x"}
	}
	tests := []struct {
		a    authz.Attributes
		want bool
	}{
		{rr("update", "", "services", "status"), true},
		{rr("update", "networking.k8s.io", "ingresses", "status"), true},
		{rr("list", "", "nodes", ""), true},
		{rr("create", "", "events", ""), true},
		{rr("update", "", "services", ""), false},
		{rr("update", "networking.k8s.io", "ingresses", ""), false},
		{rr("delete", "", "services", ""), false},
	}
	for _, tt := range tests {
		if got := authz.RulesAllow(tt.a, rules...); got != tt.want {
			t.Errorf("%s %s/%s/%s: allowed %v, want %v", tt.a.Verb, tt.a.APIGroup, tt.a.Resource, tt.a.Subresource, got, tt.want)
		}
	}
}

func TestSkiffCSIProvisionerRole(t *testing.T) {
	var rules []rbacv1.PolicyRule
	for _, r := range skiffControllerRoles() {
		if r.Name == "system:controller:skiff-csi-provisioner" {
			rules = r.Rules
		}
	}
	if rules == nil {
		t.Fatal("no system:controller:skiff-csi-provisioner role")
	}
	rr := func(verb, group, resource, sub string) authz.Attributes {
		return authz.Attributes{Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Name: "x"}
	}
	for _, tc := range []struct {
		a    authz.Attributes
		want bool
	}{
		{rr("create", "", "nodes", "proxy"), true},
		{rr("get", "", "nodes", "proxy"), false},
		{rr("create", "", "persistentvolumes", ""), true},
		{rr("update", "", "persistentvolumes", ""), true},
		{rr("delete", "", "persistentvolumes", ""), true},
		{rr("update", "", "persistentvolumeclaims", ""), true}, // cloning protection
		{rr("delete", "", "persistentvolumeclaims", ""), false},
		{rr("list", "storage.k8s.io", "csinodes", ""), true},
		{rr("watch", "storage.k8s.io", "csidrivers", ""), true},
		{rr("get", "", "secrets", ""), true},
		{rr("list", "", "secrets", ""), false},
		{rr("create", "", "pods", ""), false},
		{rr("create", "storage.k8s.io", "csistoragecapacities", ""), true},
		{rr("update", "storage.k8s.io", "csistoragecapacities", ""), true},
		{rr("delete", "storage.k8s.io", "csistoragecapacities", ""), true},
		{rr("list", "storage.k8s.io", "csistoragecapacities", ""), true},
		{rr("patch", "storage.k8s.io", "csistoragecapacities", ""), false},
	} {
		if got := authz.RulesAllow(tc.a, rules...); got != tc.want {
			t.Errorf("%s %s/%s/%s: allowed %v, want %v", tc.a.Verb, tc.a.APIGroup, tc.a.Resource, tc.a.Subresource, got, tc.want)
		}
	}
}
