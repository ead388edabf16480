package apiserver

import (
	"errors"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// fullAuthority is every permission; setting an aggregationRule, which can
// gather any rules, needs it, as upstream.
var fullAuthority = []rbacv1.PolicyRule{
	{Verbs: []string{rbacv1.VerbAll}, APIGroups: []string{rbacv1.APIGroupAll}, Resources: []string{rbacv1.ResourceAll}},
	{Verbs: []string{rbacv1.VerbAll}, NonResourceURLs: []string{rbacv1.NonResourceAll}},
}

// checkRBACWrite is upstream's escalation prevention for a role or binding
// about to be written: a user may only grant permissions they hold, unless
// allowed to escalate (roles) or bind (bindings). Other kinds pass.
func (q *request) checkRBACWrite(obj runtime.Object) error {
	if q.rbac == nil || q.authorizer == nil {
		return nil
	}
	u, ok := authn.UserFrom(q.ctx)
	if !ok || u == nil || isPrivileged(u) {
		return nil
	}
	switch o := obj.(type) {
	case *rbacv1.Role:
		if q.mayEscalate(u, "roles", o.Namespace, o.Name) {
			return nil
		}
		return q.confirmNoEscalation(u, o.Namespace, o.Name, o.Rules)
	case *rbacv1.ClusterRole:
		if q.mayEscalate(u, "clusterroles", "", o.Name) {
			return nil
		}
		if err := q.confirmNoEscalation(u, "", o.Name, o.Rules); err != nil {
			return err
		}
		if o.AggregationRule != nil {
			if ok, _ := q.holds(u, "", fullAuthority); !ok {
				return apierrors.NewForbidden(q.res.gr, o.Name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
			}
		}
		return nil
	case *rbacv1.RoleBinding:
		return q.checkBinding(u, o.Namespace, o.Name, o.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		return q.checkBinding(u, "", o.Name, o.RoleRef)
	}
	return nil
}

// checkRBACUpdate is checkRBACWrite for an update of cur to next: like
// upstream, an update that changes only what the garbage collector
// changes (owner references, finalizers) is not checked.
func (q *request) checkRBACUpdate(next, cur runtime.Object) error {
	if q.rbac == nil || !isRBACKind(next) || onlyGCFieldsChanged(next, cur) {
		return nil
	}
	err := q.checkRBACWrite(next)
	var clusterRole *rbacv1.ClusterRole
	if err == nil {
		clusterRole, _ = cur.(*rbacv1.ClusterRole)
	}
	if clusterRole != nil && clusterRole.AggregationRule != nil && next.(*rbacv1.ClusterRole).AggregationRule == nil {
		// Removing an aggregation rule needs the same authority as
		// setting one.
		u, ok := authn.UserFrom(q.ctx)
		if ok && u != nil && !q.mayEscalate(u, "clusterroles", "", clusterRole.Name) && !isPrivileged(u) {
			if ok, _ := q.holds(u, "", fullAuthority); !ok {
				return apierrors.NewForbidden(q.res.gr, clusterRole.Name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
			}
		}
	}
	return err
}

func isRBACKind(obj runtime.Object) bool {
	switch obj.(type) {
	case *rbacv1.Role, *rbacv1.ClusterRole, *rbacv1.RoleBinding, *rbacv1.ClusterRoleBinding:
		return true
	}
	return false
}

func isPrivileged(u *authn.User) bool {
	for _, g := range u.Groups {
		if g == authz.PrivilegedGroup {
			return true
		}
	}
	return false
}

// onlyGCFieldsChanged reports whether next differs from cur at most in
// owner references and finalizers.
func onlyGCFieldsChanged(next, cur runtime.Object) bool {
	if cur == nil {
		return false
	}
	a := next.DeepCopyObject()
	am, err := meta.Accessor(a)
	if err != nil {
		return false
	}
	cm, _ := meta.Accessor(cur)
	am.SetOwnerReferences(cm.GetOwnerReferences())
	am.SetFinalizers(cm.GetFinalizers())
	am.SetResourceVersion(cm.GetResourceVersion())
	am.SetManagedFields(cm.GetManagedFields())
	return equality.Semantic.DeepEqual(a, cur)
}

// mayEscalate asks the authorizers whether u may escalate roles of this
// kind: then it may write any rules.
func (q *request) mayEscalate(u *authn.User, resource, namespace, name string) bool {
	return q.allowed(authz.Attributes{User: u, Verb: "escalate", ResourceRequest: true,
		APIGroup: rbacv1.GroupName, APIVersion: "*", Resource: resource, Namespace: namespace, Name: name})
}

func (q *request) allowed(a authz.Attributes) bool {
	d, _, err := q.authorizer.Authorize(q.ctx, a)
	if err != nil {
		q.log.Debug("escalation check", "user", a.User.Name, "verb", a.Verb, "err", err)
	}
	return d == authz.Allow
}

// checkBinding allows a binding when u may bind the role it refers to, or
// already holds every permission of that role.
func (q *request) checkBinding(u *authn.User, namespace, name string, ref rbacv1.RoleRef) error {
	resource := "clusterroles"
	if ref.Kind == "Role" {
		resource = "roles"
	}
	if q.allowed(authz.Attributes{User: u, Verb: "bind", ResourceRequest: true,
		APIGroup: rbacv1.GroupName, APIVersion: "*", Resource: resource, Namespace: namespace, Name: ref.Name}) {
		return nil
	}
	rules, err := q.rbac.RoleRules(ref, namespace)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return err
		}
		return apierrors.NewBadRequest(err.Error())
	}
	return q.confirmNoEscalation(u, namespace, name, rules)
}

// holds reports whether u's own RBAC rules in namespace cover rules.
func (q *request) holds(u *authn.User, namespace string, rules []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	own, _, _ := q.rbac.RulesFor(u, namespace)
	return authz.Covers(own, rules)
}

// confirmNoEscalation refuses rules u does not hold itself, with upstream's
// message listing what is missing.
func (q *request) confirmNoEscalation(u *authn.User, namespace, name string, rules []rbacv1.PolicyRule) error {
	own, _, resolveErr := q.rbac.RulesFor(u, namespace)
	ok, missing := authz.Covers(own, rules)
	if ok {
		return nil
	}
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s",
		u.Name, u.Groups, authz.DescribeRules(missing))
	if resolveErr != nil {
		msg += fmt.Sprintf("; resolution errors: [%v]", resolveErr)
	}
	return apierrors.NewForbidden(q.res.gr, name, errors.New(msg))
}
