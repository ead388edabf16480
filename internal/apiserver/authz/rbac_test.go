package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// fakeSource is an in-memory RBACSource.
type fakeSource struct {
	roles        map[string]*rbacv1.Role // ns/name
	clusterRoles map[string]*rbacv1.ClusterRole
	rbs          []*rbacv1.RoleBinding
	crbs         []*rbacv1.ClusterRoleBinding
}

func newFakeSource() *fakeSource {
	return &fakeSource{roles: map[string]*rbacv1.Role{}, clusterRoles: map[string]*rbacv1.ClusterRole{}}
}

func (f *fakeSource) GetRole(ns, name string) (*rbacv1.Role, bool) {
	r, ok := f.roles[ns+"/"+name]
	return r, ok
}
func (f *fakeSource) GetClusterRole(name string) (*rbacv1.ClusterRole, bool) {
	r, ok := f.clusterRoles[name]
	return r, ok
}
func (f *fakeSource) ListRoleBindings(ns string) []*rbacv1.RoleBinding {
	var out []*rbacv1.RoleBinding
	for _, b := range f.rbs {
		if b.Namespace == ns {
			out = append(out, b)
		}
	}
	return out
}
func (f *fakeSource) ListClusterRoleBindings() []*rbacv1.ClusterRoleBinding { return f.crbs }

func (f *fakeSource) addRole(ns, name string, rules ...rbacv1.PolicyRule) {
	f.roles[ns+"/"+name] = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}
func (f *fakeSource) addClusterRole(name string, rules ...rbacv1.PolicyRule) {
	f.clusterRoles[name] = &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
}
func (f *fakeSource) bind(ns, name, kind, role string, subjects ...rbacv1.Subject) {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}
	if ns == "" {
		f.crbs = append(f.crbs, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: subjects})
		return
	}
	f.rbs = append(f.rbs, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, RoleRef: ref, Subjects: subjects})
}

func user(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}
func group(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}
func sa(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
}

func res(verb, group, resource, sub, ns, name string) Attributes {
	return Attributes{Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
}

func TestRulesAllow(t *testing.T) {
	rule := func(verbs, groups, resources, names, urls string) rbacv1.PolicyRule {
		split := func(s string) []string {
			if s == "-" {
				return nil
			}
			if s == "''" {
				return []string{""}
			}
			return strings.Split(s, ",")
		}
		return rbacv1.PolicyRule{Verbs: split(verbs), APIGroups: split(groups), Resources: split(resources), ResourceNames: split(names), NonResourceURLs: split(urls)}
	}
	tests := []struct {
		name string
		rule rbacv1.PolicyRule
		a    Attributes
		want bool
	}{
		{"exact", rule("get", "''", "pods", "-", "-"), res("get", "", "pods", "", "ns", "p"), true},
		{"other verb", rule("get", "''", "pods", "-", "-"), res("list", "", "pods", "", "ns", ""), false},
		{"verb star", rule("*", "''", "pods", "-", "-"), res("delete", "", "pods", "", "ns", "p"), true},
		{"other group", rule("get", "apps", "pods", "-", "-"), res("get", "", "pods", "", "ns", "p"), false},
		{"group star", rule("get", "*", "deployments", "-", "-"), res("get", "apps", "deployments", "", "ns", "d"), true},
		{"resource star", rule("get", "''", "*", "-", "-"), res("get", "", "secrets", "", "ns", "s"), true},
		{"resource star covers subresource", rule("get", "''", "*", "-", "-"), res("get", "", "pods", "log", "ns", "p"), true},
		{"parent does not cover subresource", rule("get", "''", "pods", "-", "-"), res("get", "", "pods", "log", "ns", "p"), false},
		{"subresource exact", rule("get", "''", "pods/log", "-", "-"), res("get", "", "pods", "log", "ns", "p"), true},
		{"subresource does not cover parent", rule("get", "''", "pods/log", "-", "-"), res("get", "", "pods", "", "ns", "p"), false},
		{"other subresource", rule("get", "''", "pods/log", "-", "-"), res("get", "", "pods", "exec", "ns", "p"), false},
		{"star slash sub", rule("get", "apps", "*/scale", "-", "-"), res("get", "apps", "deployments", "scale", "ns", "d"), true},
		{"star slash sub needs sub", rule("get", "apps", "*/scale", "-", "-"), res("get", "apps", "deployments", "", "ns", "d"), false},
		{"pods/* is not a wildcard", rule("get", "''", "pods/*", "-", "-"), res("get", "", "pods", "log", "ns", "p"), false},
		{"resource name match", rule("get", "''", "configmaps", "a,b", "-"), res("get", "", "configmaps", "", "ns", "b"), true},
		{"resource name mismatch", rule("get", "''", "configmaps", "a", "-"), res("get", "", "configmaps", "", "ns", "c"), false},
		{"resource names never match list", rule("list", "''", "configmaps", "a", "-"), res("list", "", "configmaps", "", "ns", ""), false},
		{"resource names match list by field selector", rule("list", "''", "configmaps", "a", "-"), res("list", "", "configmaps", "", "ns", "a"), true},
		{"resource names never match create", rule("create", "''", "configmaps", "a", "-"), res("create", "", "configmaps", "", "ns", ""), false},
		{"non-resource exact", rule("get", "-", "-", "-", "/healthz"), Attributes{Verb: "get", Path: "/healthz"}, true},
		{"non-resource other", rule("get", "-", "-", "-", "/healthz"), Attributes{Verb: "get", Path: "/version"}, false},
		{"non-resource prefix", rule("get", "-", "-", "-", "/apis/*"), Attributes{Verb: "get", Path: "/apis/apps/v1"}, true},
		{"non-resource prefix exact", rule("get", "-", "-", "-", "/apis/*"), Attributes{Verb: "get", Path: "/apis/"}, true},
		{"non-resource prefix miss", rule("get", "-", "-", "-", "/apis/*"), Attributes{Verb: "get", Path: "/api"}, false},
		{"non-resource star", rule("get", "-", "-", "-", "*"), Attributes{Verb: "get", Path: "/anything"}, true},
		{"non-resource verb", rule("get", "-", "-", "-", "*"), Attributes{Verb: "post", Path: "/anything"}, false},
		{"resource rule does not match path", rule("*", "*", "*", "-", "-"), Attributes{Verb: "get", Path: "/healthz"}, false},
		{"url rule does not match resource", rule("*", "-", "-", "-", "*"), res("get", "", "pods", "", "", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RulesAllow(tt.a, tt.rule); got != tt.want {
				t.Errorf("RulesAllow(%+v, %+v) = %v, want %v", tt.a, tt.rule, got, tt.want)
			}
		})
	}
}

func TestRBACAuthorize(t *testing.T) {
	src := newFakeSource()
	podReader := rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	src.addClusterRole("pod-reader", podReader)
	src.addClusterRole("health", rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}})
	src.addRole("team", "secret-reader", rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}})
	src.addRole("other", "pod-reader", podReader) // a Role that shadows nothing
	src.bind("", "alice-reads-pods", "ClusterRole", "pod-reader", user("alice"))
	src.bind("", "everyone-health", "ClusterRole", "health", group("system:authenticated"))
	src.bind("team", "bob-secrets", "Role", "secret-reader", user("bob"))
	src.bind("team", "bob-pods", "ClusterRole", "pod-reader", user("bob"))
	src.bind("team", "sa-secrets", "Role", "secret-reader", sa("team", "builder"))
	src.bind("team", "sa-no-ns", "ClusterRole", "pod-reader", sa("", "builder"))
	src.bind("team", "dangling", "ClusterRole", "gone", user("carol"))
	src.bind("", "wrong-kind", "Role", "secret-reader", user("dave"))
	r := NewRBAC(src)

	alice := &authn.User{Name: "alice", Groups: []string{"system:authenticated"}}
	bob := &authn.User{Name: "bob", Groups: []string{"system:authenticated"}}
	carol := &authn.User{Name: "carol"}
	dave := &authn.User{Name: "dave"}
	builder := &authn.User{Name: "system:serviceaccount:team:builder", Groups: []string{"system:serviceaccounts"}}
	otherBuilder := &authn.User{Name: "system:serviceaccount:other:builder"}

	tests := []struct {
		name       string
		user       *authn.User
		a          Attributes
		want       Decision
		wantReason string
	}{
		{"cluster binding anywhere", alice, res("list", "", "pods", "", "x", ""), Allow, `RBAC: allowed by ClusterRoleBinding "alice-reads-pods" of ClusterRole "pod-reader" to User "alice"`},
		{"cluster binding cluster-wide", alice, res("list", "", "pods", "", "", ""), Allow, ""},
		{"cluster binding verb", alice, res("delete", "", "pods", "", "x", "p"), NoOpinion, ""},
		{"group", bob, Attributes{Verb: "get", Path: "/healthz"}, Allow, ""},
		{"role binding in its namespace", bob, res("get", "", "secrets", "", "team", "s"), Allow, `RBAC: allowed by RoleBinding "bob-secrets/team" of Role "secret-reader" to User "bob"`},
		{"role binding elsewhere", bob, res("get", "", "secrets", "", "other", "s"), NoOpinion, ""},
		{"role binding cluster-wide", bob, res("list", "", "pods", "", "", ""), NoOpinion, ""},
		{"role binding to cluster role", bob, res("list", "", "pods", "", "team", ""), Allow, ""},
		{"service account", builder, res("get", "", "secrets", "", "team", "s"), Allow, `RBAC: allowed by RoleBinding "sa-secrets/team" of Role "secret-reader" to ServiceAccount "builder/team"`},
		{"service account without namespace never matches", builder, res("list", "", "pods", "", "team", ""), NoOpinion, ""},
		{"service account of another namespace", otherBuilder, res("get", "", "secrets", "", "team", "s"), NoOpinion, ""},
		{"missing role", carol, res("get", "", "pods", "", "team", "p"), NoOpinion, `RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found`},
		{"cluster binding to a Role", dave, res("get", "", "secrets", "", "team", "s"), NoOpinion, `RBAC: role.rbac.authorization.k8s.io "secret-reader" not found`},
		{"nil user", nil, res("get", "", "pods", "", "x", "p"), NoOpinion, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.User = tt.user
			d, reason, err := r.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.want {
				t.Errorf("decision = %v, want %v (reason %q)", d, tt.want, reason)
			}
			if tt.wantReason != "" && reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", reason, tt.wantReason)
			}
			if tt.want == NoOpinion && tt.wantReason == "" && reason != "" {
				t.Errorf("reason = %q, want empty", reason)
			}
		})
	}
}

func TestRBACRulesFor(t *testing.T) {
	src := newFakeSource()
	a := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	b := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}
	src.addClusterRole("a", a)
	src.addRole("ns", "b", b)
	src.bind("", "a", "ClusterRole", "a", user("u"))
	src.bind("ns", "b", "Role", "b", user("u"))
	src.bind("ns", "gone", "Role", "gone", user("u"))
	r := NewRBAC(src)
	u := &authn.User{Name: "u"}

	rules, incomplete, err := r.RulesFor(u, "")
	if err != nil || incomplete || len(rules) != 1 {
		t.Fatalf("cluster-wide: rules=%v incomplete=%v err=%v", rules, incomplete, err)
	}
	rules, incomplete, err = r.RulesFor(u, "ns")
	if len(rules) != 2 || !incomplete || err == nil || !strings.Contains(err.Error(), `"gone" not found`) {
		t.Fatalf("namespace: rules=%v incomplete=%v err=%v", rules, incomplete, err)
	}
}

// BenchmarkRBACAuthorize measures a service account allowed by a
// RoleBinding near the end of ~60 bindings, as a typical cluster has.
func BenchmarkRBACAuthorize(b *testing.B) {
	src := newFakeSource()
	src.addClusterRole("edit", rbacv1.PolicyRule{Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
		APIGroups: []string{"", "apps"}, Resources: []string{"pods", "configmaps", "deployments", "services"}})
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("system:controller:c%d", i)
		src.addClusterRole(name, rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"nodes"}})
		src.bind("", name, "ClusterRole", name, sa("kube-system", fmt.Sprintf("c%d", i)))
	}
	for i := 0; i < 9; i++ {
		src.bind("app", fmt.Sprintf("other-%d", i), "ClusterRole", "edit", user(fmt.Sprintf("u%d", i)))
	}
	src.bind("app", "ci", "ClusterRole", "edit", sa("app", "ci"))
	r := NewRBAC(src)
	a := res("create", "", "configmaps", "", "app", "")
	a.User = &authn.User{Name: "system:serviceaccount:app:ci", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:app", "system:authenticated"}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d, _, _ := r.Authorize(ctx, a); d != Allow {
			b.Fatal("not allowed")
		}
	}
}
