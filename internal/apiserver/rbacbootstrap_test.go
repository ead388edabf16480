package apiserver

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReconcileInto(t *testing.T) {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}
	sub := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: name}
	}
	binding := func(ref rbacv1.RoleRef, ann map[string]string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Annotations: ann}, RoleRef: ref, Subjects: subjects}
	}
	auto := map[string]string{"rbac.authorization.kubernetes.io/autoupdate": "true"}
	want := binding(ref, auto, sub("a"))
	otherRef := ref
	otherRef.Name = "edit"

	tests := []struct {
		name string
		cur  *rbacv1.ClusterRoleBinding
		want reconcileResult
		subs int
	}{
		{"same", binding(ref, auto, sub("a")), unchanged, 1},
		{"extra subject kept", binding(ref, auto, sub("a"), sub("b")), unchanged, 2},
		{"missing subject added", binding(ref, auto, sub("b")), updated, 2},
		{"missing annotation added", binding(ref, nil, sub("a")), updated, 1},
		{"opted out", binding(ref, map[string]string{"rbac.authorization.kubernetes.io/autoupdate": "false"}), unchanged, 0},
		{"other roleRef", binding(otherRef, auto, sub("a")), recreate, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reconcileInto(tt.cur, want); got != tt.want || len(tt.cur.Subjects) != tt.subs {
				t.Errorf("reconcileInto = %v with subjects %v; want %v with %d", got, tt.cur.Subjects, tt.want, tt.subs)
			}
		})
	}

	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "r", Annotations: auto},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	wantRole := role.DeepCopy()
	wantRole.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods", "secrets"}}}
	if got := reconcileInto(role, wantRole); got != updated || len(role.Rules) != 3 {
		t.Errorf("rules: %v, %v; want the uncovered get/list secrets added", got, role.Rules)
	}
	if got := reconcileInto(role, wantRole); got != unchanged {
		t.Errorf("second reconcile = %v", got)
	}
}
