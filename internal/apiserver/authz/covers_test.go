package authz

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestCovers(t *testing.T) {
	r := func(verbs, groups, resources, names []string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names}
	}
	s := func(v ...string) []string { return v }
	tests := []struct {
		name    string
		owner   []rbacv1.PolicyRule
		servant []rbacv1.PolicyRule
		want    bool
		missing int
	}{
		{"same", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, true, 0},
		{"star covers all", []rbacv1.PolicyRule{r(s("*"), s("*"), s("*"), nil)}, []rbacv1.PolicyRule{r(s("get", "list"), s("", "apps"), s("pods", "deployments/scale"), s("a"))}, true, 0},
		{"split across rules", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil), r(s("list"), s(""), s("pods"), nil)}, []rbacv1.PolicyRule{r(s("get", "list"), s(""), s("pods"), nil)}, true, 0},
		{"missing verb", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, []rbacv1.PolicyRule{r(s("get", "delete"), s(""), s("pods"), nil)}, false, 1},
		{"named owner does not cover unnamed", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), s("a"))}, []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, false, 1},
		{"unnamed owner covers named", []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), nil)}, []rbacv1.PolicyRule{r(s("get"), s(""), s("pods"), s("a", "b"))}, true, 0},
		{"star sub", []rbacv1.PolicyRule{r(s("get"), s("apps"), s("*/scale"), nil)}, []rbacv1.PolicyRule{r(s("get"), s("apps"), s("deployments/scale"), nil)}, true, 0},
		{"url prefix", []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/apis/*")}}, []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/apis/apps")}}, true, 0},
		{"url miss", []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/apis/*")}}, []rbacv1.PolicyRule{{Verbs: s("get"), NonResourceURLs: s("/metrics")}}, false, 1},
		{"nothing held", nil, []rbacv1.PolicyRule{r(s("get", "list"), s(""), s("secrets"), nil)}, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := Covers(tt.owner, tt.servant)
			if got != tt.want || len(missing) != tt.missing {
				t.Errorf("Covers = %v, %v; want %v with %d missing", got, missing, tt.want, tt.missing)
			}
		})
	}
}

func TestDescribeRules(t *testing.T) {
	_, missing := Covers(nil, []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"secrets"}},
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}})
	want := "{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}\n{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}"
	if got := DescribeRules(missing); got != want {
		t.Errorf("DescribeRules = %q, want %q", got, want)
	}
}
