package apiserver_test

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// startRBACServer runs an API server with RBAC on; bearer tokens name
// users: "admin" is in system:masters, any other token is a user of that
// name.
func startRBACServer(t *testing.T) *testserver.Server {
	t.Helper()
	lookup := func(token string) (*authn.User, bool) {
		if token == "admin" {
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		}
		return &authn.User{Name: token, Groups: []string{"system:authenticated"}}, true
	}
	return testserver.StartWith(t, testserver.Options{Authenticator: authn.NewBearerToken(lookup), AccessControl: true})
}

func TestRBACDefaultPolicyAuthorizationAndEscalation(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t)
	admin := s.ClientWithToken("admin")
	alice := s.ClientWithToken("alice")

	// The default policy exists.
	view, err := admin.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	if err != nil || view.AggregationRule == nil || view.Labels["kubernetes.io/bootstrapping"] != "rbac-defaults" {
		t.Fatalf("view = %+v, %v", view, err)
	}
	for _, name := range []string{"cluster-admin", "system:node", "system:controller:job-controller", "skiff:kubelet-bootstrap"} {
		if _, err := admin.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("binding %s: %v", name, err)
		}
	}
	if _, err := admin.RbacV1().Roles("kube-public").Get(ctx, "skiff:bootstrap-signer-clusterinfo", metav1.GetOptions{}); err != nil {
		t.Errorf("cluster-info role: %v", err)
	}

	// A second start writes nothing.
	before, _ := admin.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if err := s.API.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := admin.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	if len(before.Items) != len(after.Items) {
		t.Fatalf("second bootstrap changed the number of cluster roles: %d, then %d", len(before.Items), len(after.Items))
	}
	for i := range before.Items {
		if before.Items[i].ResourceVersion != after.Items[i].ResourceVersion {
			t.Errorf("second bootstrap rewrote %s", before.Items[i].Name)
		}
	}

	// Without a binding alice may read nothing, with upstream's message.
	_, err = alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "alice" cannot list resource "pods" in API group "" in the namespace "default"`) {
		t.Fatalf("list pods without binding: %v", err)
	}
	// system:basic-user and system:discovery apply to every authenticated user.
	if _, err := alice.Discovery().ServerVersion(); err != nil {
		t.Errorf("version: %v", err)
	}

	// A RoleBinding grants in its namespace only.
	mustCreateRole(t, admin, "default", "pod-reader", rbacv1.PolicyRule{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}})
	mustCreateRole(t, admin, "default", "rbac-writer", rbacv1.PolicyRule{Verbs: []string{"create", "update"}, APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings"}})
	mustBind(t, admin, "default", "alice-pods", "Role", "pod-reader", "alice")
	mustBind(t, admin, "default", "alice-rbac", "Role", "rbac-writer", "alice")
	if _, err := alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list pods with binding: %v", err)
	}
	if _, err := alice.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods in another namespace: %v", err)
	}

	// Escalation: alice may grant what she holds, nothing more.
	_, err = alice.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secrets"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:`) ||
		!strings.Contains(err.Error(), `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`) {
		t.Errorf("role with unheld rules: %v", err)
	}
	if _, err := alice.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods-get"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("role with held rules: %v", err)
	}
	if err := bind(alice, "default", "bob-admin", "ClusterRole", "cluster-admin", "bob"); !apierrors.IsForbidden(err) {
		t.Errorf("binding cluster-admin: %v", err)
	}
	if err := bind(alice, "default", "bob-pods", "Role", "pod-reader", "bob"); err != nil {
		t.Errorf("binding a held role: %v", err)
	}
	// With bind on cluster-admin, alice may bind it without holding it.
	mustCreateRole(t, admin, "default", "binder", rbacv1.PolicyRule{Verbs: []string{"bind"}, APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, ResourceNames: []string{"cluster-admin"}})
	mustBind(t, admin, "default", "alice-binder", "Role", "binder", "alice")
	if err := bind(alice, "default", "bob-admin", "ClusterRole", "cluster-admin", "bob"); err != nil {
		t.Errorf("binding with the bind verb: %v", err)
	}

	// roleRef cannot change.
	b, err := admin.RbacV1().RoleBindings("default").Get(ctx, "bob-pods", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.RoleRef.Name = "binder"
	if _, err := admin.RbacV1().RoleBindings("default").Update(ctx, b, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "cannot change roleRef") {
		t.Errorf("changing roleRef: %v", err)
	}
}

func TestRBACBootstrapReconcilesExistingObjects(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t)
	admin := s.ClientWithToken("admin")

	// A cluster from before: a default role lost a rule, a binding gained
	// a subject, an opted-out role was emptied.
	basic, _ := admin.RbacV1().ClusterRoles().Get(ctx, "system:basic-user", metav1.GetOptions{})
	basic.Rules = basic.Rules[:1]
	mustUpdateClusterRole(t, admin, basic)
	disc, _ := admin.RbacV1().ClusterRoles().Get(ctx, "system:discovery", metav1.GetOptions{})
	disc.Annotations["rbac.authorization.kubernetes.io/autoupdate"] = "false"
	disc.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/version"}}}
	mustUpdateClusterRole(t, admin, disc)
	crb, _ := admin.RbacV1().ClusterRoleBindings().Get(ctx, "system:basic-user", metav1.GetOptions{})
	crb.Subjects = append(crb.Subjects, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "extra"})
	if _, err := admin.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := admin.RbacV1().ClusterRoles().Delete(ctx, "system:node-proxier", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	waitForCaches(t, admin)
	if err := s.API.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}

	basic, _ = admin.RbacV1().ClusterRoles().Get(ctx, "system:basic-user", metav1.GetOptions{})
	if !hasRuleFor(basic.Rules, "selfsubjectreviews") {
		t.Errorf("system:basic-user not repaired: %v", basic.Rules)
	}
	disc, _ = admin.RbacV1().ClusterRoles().Get(ctx, "system:discovery", metav1.GetOptions{})
	if len(disc.Rules) != 1 || len(disc.Rules[0].NonResourceURLs) != 1 {
		t.Errorf("opted-out system:discovery changed: %v", disc.Rules)
	}
	crb, _ = admin.RbacV1().ClusterRoleBindings().Get(ctx, "system:basic-user", metav1.GetOptions{})
	if len(crb.Subjects) != 2 {
		t.Errorf("extra subject not kept: %v", crb.Subjects)
	}
	if _, err := admin.RbacV1().ClusterRoles().Get(ctx, "system:node-proxier", metav1.GetOptions{}); err != nil {
		t.Errorf("deleted default role not recreated: %v", err)
	}
}

// waitForCaches makes sure the server's caches hold the writes just made
// (a consistent list waits for them).
func waitForCaches(t *testing.T, c kubernetes.Interface) {
	t.Helper()
	if _, err := c.RbacV1().ClusterRoles().List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

func hasRuleFor(rules []rbacv1.PolicyRule, resource string) bool {
	for _, r := range rules {
		for _, res := range r.Resources {
			if res == resource {
				return true
			}
		}
	}
	return false
}

func mustUpdateClusterRole(t *testing.T, c kubernetes.Interface, r *rbacv1.ClusterRole) {
	t.Helper()
	if _, err := c.RbacV1().ClusterRoles().Update(context.Background(), r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mustCreateRole(t *testing.T, c kubernetes.Interface, ns, name string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	if _, err := c.RbacV1().Roles(ns).Create(context.Background(), &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func bind(c kubernetes.Interface, ns, name, kind, role, user string) error {
	_, err := c.RbacV1().RoleBindings(ns).Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: user}},
	}, metav1.CreateOptions{})
	return err
}

func mustBind(t *testing.T, c kubernetes.Interface, ns, name, kind, role, user string) {
	t.Helper()
	if err := bind(c, ns, name, kind, role, user); err != nil {
		t.Fatal(err)
	}
	// The authorizer reads the watch caches, which trail the write; a
	// consistent list waits until they hold it, as an informer would.
	if _, err := c.RbacV1().Roles(ns).List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings(ns).List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}
