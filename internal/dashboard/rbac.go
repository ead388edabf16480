package dashboard

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// User is the dashboard's own identity, and RoleName the ClusterRole (and
// ClusterRoleBinding) that lets it read usage and nothing else.
const (
	User     = "system:skiff:dashboard"
	RoleName = "system:skiff:dashboard"
)

// EnsureRBAC creates or restores the dashboard's ClusterRole and its
// binding to User, with client (an administrator's).
func EnsureRBAC(ctx context.Context, client kubernetes.Interface) error {
	labels := map[string]string{"app.kubernetes.io/managed-by": "skiff"}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: RoleName, Labels: labels},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"nodes", "pods"}, Verbs: []string{"get", "list"},
		}},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: RoleName, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: RoleName},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: User}},
	}
	roles := client.RbacV1().ClusterRoles()
	if cur, err := roles.Get(ctx, RoleName, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		_, err = roles.Create(ctx, role, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("dashboard: create ClusterRole: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("dashboard: get ClusterRole: %w", err)
	} else {
		cur.Rules = role.Rules
		if _, err := roles.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("dashboard: update ClusterRole: %w", err)
		}
	}
	bindings := client.RbacV1().ClusterRoleBindings()
	cur, err := bindings.Get(ctx, RoleName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("dashboard: create ClusterRoleBinding: %w", err)
		}
	case err != nil:
		return fmt.Errorf("dashboard: get ClusterRoleBinding: %w", err)
	case cur.RoleRef != binding.RoleRef:
		// roleRef is immutable: replace the binding.
		if err := bindings.Delete(ctx, RoleName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("dashboard: replace ClusterRoleBinding: %w", err)
		}
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("dashboard: replace ClusterRoleBinding: %w", err)
		}
	default:
		cur.Subjects = binding.Subjects
		if _, err := bindings.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("dashboard: update ClusterRoleBinding: %w", err)
		}
	}
	return nil
}
