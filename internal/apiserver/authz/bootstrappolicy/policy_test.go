package bootstrappolicy

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// aggregated returns the cluster roles by name with aggregation applied
// until nothing changes, as the aggregation controller leaves them.
func aggregated(t *testing.T) map[string]rbacv1.ClusterRole {
	t.Helper()
	byName := map[string]rbacv1.ClusterRole{}
	for _, r := range ClusterRoles() {
		byName[r.Name] = r
	}
	for changed := true; changed; {
		changed = false
		for name, r := range byName {
			if r.AggregationRule == nil {
				continue
			}
			var rules []rbacv1.PolicyRule
			for _, sel := range r.AggregationRule.ClusterRoleSelectors {
				s, err := metav1.LabelSelectorAsSelector(&sel)
				if err != nil {
					t.Fatal(err)
				}
				for _, other := range byName {
					if other.Name != name && s.Matches(labels.Set(other.Labels)) {
						rules = append(rules, other.Rules...)
					}
				}
			}
			if len(rules) != len(r.Rules) {
				r.Rules = rules
				byName[name] = r
				changed = true
			}
		}
	}
	return byName
}

func TestDefaultRolesKeyFacts(t *testing.T) {
	roles := aggregated(t)
	nodeRole := rbacv1.ClusterRole{Rules: NodeRules()}
	rr := func(verb, group, resource, sub string) authz.Attributes {
		return authz.Attributes{Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: "ns", Name: "x"}
	}
	path := func(verb, p string) authz.Attributes { return authz.Attributes{Verb: verb, Path: p} }
	tests := []struct {
		role string
		a    authz.Attributes
		want bool
	}{
		{"view", rr("get", "", "pods", ""), true},
		{"view", rr("list", "apps", "deployments", ""), true},
		{"view", rr("get", "", "secrets", ""), false},
		{"view", rr("create", "", "pods", ""), false},
		{"view", rr("get", "", "pods", "log"), true},
		{"view", rr("create", "", "pods", "exec"), false},
		{"edit", rr("get", "", "secrets", ""), true},
		{"edit", rr("create", "apps", "deployments", ""), true},
		{"edit", rr("create", "", "pods", "exec"), true},
		{"edit", rr("create", "", "serviceaccounts", "token"), true},
		{"edit", rr("create", rbacv1.GroupName, "rolebindings", ""), false},
		{"edit", rr("get", "", "pods", ""), true},
		{"admin", rr("create", rbacv1.GroupName, "rolebindings", ""), true},
		{"admin", rr("create", rbacv1.GroupName, "roles", ""), true},
		{"admin", rr("get", "", "secrets", ""), true},
		{"admin", rr("create", "authorization.k8s.io", "localsubjectaccessreviews", ""), true},
		{"admin", rr("create", rbacv1.GroupName, "clusterroles", ""), false},
		{"cluster-admin", rr("delete", "anything", "whatever", ""), true},
		{"cluster-admin", path("post", "/anything"), true},
		{"system:discovery", path("get", "/apis/apps/v1"), true},
		{"system:discovery", path("get", "/metrics"), false},
		{"system:public-info-viewer", path("get", "/version"), true},
		{"system:public-info-viewer", path("get", "/api"), false},
		{"system:basic-user", rr("create", "authorization.k8s.io", "selfsubjectaccessreviews", ""), true},
		{"system:basic-user", rr("create", "authentication.k8s.io", "selfsubjectreviews", ""), true},
		{"system:node-bootstrapper", rr("create", "certificates.k8s.io", "certificatesigningrequests", ""), true},
		{"system:node-bootstrapper", rr("update", "certificates.k8s.io", "certificatesigningrequests", "approval"), false},
		{"system:kube-scheduler", rr("create", "", "pods", "binding"), true},
		{"system:kube-scheduler", rr("get", "", "secrets", ""), false},
		{"system:kube-controller-manager", rr("list", "", "secrets", ""), true},
		{"system:kube-controller-manager", rr("create", "", "serviceaccounts", "token"), true},
		{"system:controller:clusterrole-aggregation-controller", rr("escalate", rbacv1.GroupName, "clusterroles", ""), true},
		{"system:controller:disruption-controller", rr("get", "apps", "deployments", "scale"), true},
	}
	for _, tt := range tests {
		r, ok := roles[tt.role]
		if !ok {
			t.Errorf("role %s missing", tt.role)
			continue
		}
		if got := authz.RulesAllow(tt.a, r.Rules...); got != tt.want {
			t.Errorf("%s allows %s %s/%s/%s %s = %v, want %v", tt.role, tt.a.Verb, tt.a.APIGroup, tt.a.Resource, tt.a.Subresource, tt.a.Path, got, tt.want)
		}
	}
	for _, a := range []authz.Attributes{
		rr("create", "authentication.k8s.io", "tokenreviews", ""),
		rr("get", "", "secrets", ""),
		rr("patch", "", "nodes", "status"),
		rr("create", "", "serviceaccounts", "token"),
		rr("update", "coordination.k8s.io", "leases", ""),
	} {
		if !authz.RulesAllow(a, nodeRole.Rules...) {
			t.Errorf("system:node cannot %s %s/%s", a.Verb, a.Resource, a.Subresource)
		}
	}
}

func TestDefaultObjectsConsistent(t *testing.T) {
	clusterRoles := map[string]bool{}
	for _, r := range ClusterRoles() {
		if clusterRoles[r.Name] {
			t.Errorf("duplicate cluster role %s", r.Name)
		}
		clusterRoles[r.Name] = true
		checkMeta(t, r.ObjectMeta)
	}
	for _, want := range []string{"cluster-admin", "admin", "edit", "view", "system:node", "system:node-proxier",
		"system:controller:attachdetach-controller", "system:controller:ttl-after-finished-controller",
		"system:certificates.k8s.io:legacy-unknown-approver", "system:service-account-issuer-discovery"} {
		if !clusterRoles[want] {
			t.Errorf("cluster role %s missing", want)
		}
	}
	bindings := map[string]rbacv1.ClusterRoleBinding{}
	for _, b := range ClusterRoleBindings() {
		if _, dup := bindings[b.Name]; dup {
			t.Errorf("duplicate binding %s", b.Name)
		}
		bindings[b.Name] = b
		checkMeta(t, b.ObjectMeta)
		if b.RoleRef.Kind != "ClusterRole" || !clusterRoles[b.RoleRef.Name] {
			t.Errorf("binding %s refers to missing %s %s", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
		}
	}
	if s := bindings["system:controller:job-controller"].Subjects; len(s) != 1 || s[0].Kind != "ServiceAccount" || s[0].Namespace != "kube-system" || s[0].Name != "job-controller" {
		t.Errorf("job-controller binding subjects = %v", s)
	}
	if s := bindings["system:node"].Subjects; len(s) != 0 {
		t.Errorf("system:node is bound to %v", s)
	}
	if s := bindings["skiff:node-autoapprove-bootstrap"].Subjects; len(s) != 1 || s[0].Name != "system:bootstrappers" {
		t.Errorf("node-autoapprove-bootstrap subjects = %v", s)
	}
	roles := NamespaceRoles()
	for ns, bs := range NamespaceRoleBindings() {
		for _, b := range bs {
			checkMeta(t, b.ObjectMeta)
			if b.Namespace != ns {
				t.Errorf("binding %s in namespace %s listed under %s", b.Name, b.Namespace, ns)
			}
			found := false
			for _, r := range roles[ns] {
				checkMeta(t, r.ObjectMeta)
				found = found || (b.RoleRef.Kind == "Role" && r.Name == b.RoleRef.Name && r.Namespace == ns)
			}
			if !found {
				t.Errorf("rolebinding %s/%s refers to missing role %s", ns, b.Name, b.RoleRef.Name)
			}
		}
	}
	anon := authz.Attributes{Verb: "get", ResourceRequest: true, Resource: "configmaps", Namespace: "kube-public", Name: "cluster-info"}
	for _, r := range roles["kube-public"] {
		if r.Name == "skiff:bootstrap-signer-clusterinfo" && !authz.RulesAllow(anon, r.Rules...) {
			t.Error("cluster-info is not readable through skiff:bootstrap-signer-clusterinfo")
		}
	}
}

func checkMeta(t *testing.T, m metav1.ObjectMeta) {
	t.Helper()
	if m.Labels[BootstrappingLabel] != BootstrappingValue || m.Annotations[AutoUpdateAnnotation] != "true" {
		t.Errorf("%s: labels %v annotations %v", m.Name, m.Labels, m.Annotations)
	}
}
