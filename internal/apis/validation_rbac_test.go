package apis

import (
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateRBAC(t *testing.T) {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}
	good := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"}, RoleRef: ref,
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}, {Kind: "ServiceAccount", Name: "sa", Namespace: "ns"}}}
	Default(good)
	if good.Subjects[0].APIGroup != rbacv1.GroupName {
		t.Errorf("user subject apiGroup not defaulted: %+v", good.Subjects[0])
	}
	if errs := Validate(good); len(errs) != 0 {
		t.Errorf("valid binding: %v", errs)
	}
	changed := good.DeepCopy()
	changed.RoleRef.Name = "edit"
	if errs := ValidateUpdate(changed, good); len(errs) != 1 || !strings.Contains(errs[0].Error(), "cannot change roleRef") {
		t.Errorf("roleRef change: %v", errs)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "x"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sa"}}}
	if errs := Validate(crb); len(errs) != 2 {
		t.Errorf("cluster binding to a Role with a namespace-less SA: %v", errs)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Rules: []rbacv1.PolicyRule{
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz"}},
		{Verbs: []string{"get"}, Resources: []string{"pods"}},
	}}
	if errs := Validate(role); len(errs) != 2 {
		t.Errorf("role with a URL rule and a rule without apiGroups: %v", errs)
	}
}
