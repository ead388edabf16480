package bootstrappolicy

import (
	"testing"

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
