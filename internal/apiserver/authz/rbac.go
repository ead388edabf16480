package authz

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// RBACSource is where the RBAC authorizer reads roles and bindings: the API
// server's watch caches. Returned objects are shared and read-only.
type RBACSource interface {
	GetRole(namespace, name string) (*rbacv1.Role, bool)
	GetClusterRole(name string) (*rbacv1.ClusterRole, bool)
	ListRoleBindings(namespace string) []*rbacv1.RoleBinding
	ListClusterRoleBindings() []*rbacv1.ClusterRoleBinding
}

// RBAC authorizes requests by the Roles, ClusterRoles and their bindings,
// as upstream's RBAC authorizer: ClusterRoleBindings grant everywhere,
// RoleBindings in their own namespace. It allows or has no opinion; it
// never denies.
type RBAC struct{ src RBACSource }

// NewRBAC evaluates RBAC over src.
func NewRBAC(src RBACSource) *RBAC { return &RBAC{src: src} }

// Authorize implements Authorizer. On allow, reason names the binding that
// allowed the request; otherwise it is empty unless a binding refers to a
// role that does not exist (upstream reports those).
func (r *RBAC) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	if a.User == nil {
		return NoOpinion, "", nil
	}
	var missing []error
	for _, b := range r.src.ListClusterRoleBindings() {
		i := subjectIndex(a.User, b.Subjects)
		if i < 0 {
			continue
		}
		rules, err := r.roleRules(b.RoleRef, "")
		if err != nil {
			missing = append(missing, err)
			continue
		}
		if RulesAllow(a, rules...) {
			return Allow, fmt.Sprintf("RBAC: allowed by ClusterRoleBinding %q of %s %q to %s",
				b.Name, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(b.Subjects[i])), nil
		}
	}
	if a.Namespace != "" {
		for _, b := range r.src.ListRoleBindings(a.Namespace) {
			i := subjectIndex(a.User, b.Subjects)
			if i < 0 {
				continue
			}
			rules, err := r.roleRules(b.RoleRef, b.Namespace)
			if err != nil {
				missing = append(missing, err)
				continue
			}
			if RulesAllow(a, rules...) {
				return Allow, fmt.Sprintf("RBAC: allowed by RoleBinding %q of %s %q to %s",
					b.Name+"/"+b.Namespace, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(b.Subjects[i])), nil
			}
		}
	}
	if len(missing) > 0 {
		return NoOpinion, "RBAC: " + utilerrors.NewAggregate(missing).Error(), nil
	}
	return NoOpinion, "", nil
}

// RulesFor returns every rule that applies to u in namespace (cluster-wide
// rules included; namespace "" means cluster-wide only). When a binding
// names a role that does not exist, the rules that could be resolved are
// returned, incomplete is set and err says which roles are missing; that
// error is not fatal (upstream's SelfSubjectRulesReview reports it as its
// evaluationError).
func (r *RBAC) RulesFor(u *authn.User, namespace string) (rules []rbacv1.PolicyRule, incomplete bool, err error) {
	if u == nil {
		return nil, false, nil
	}
	var missing []error
	for _, b := range r.src.ListClusterRoleBindings() {
		if subjectIndex(u, b.Subjects) < 0 {
			continue
		}
		rs, err := r.roleRules(b.RoleRef, "")
		if err != nil {
			missing = append(missing, err)
			continue
		}
		rules = append(rules, rs...)
	}
	if namespace != "" {
		for _, b := range r.src.ListRoleBindings(namespace) {
			if subjectIndex(u, b.Subjects) < 0 {
				continue
			}
			rs, err := r.roleRules(b.RoleRef, b.Namespace)
			if err != nil {
				missing = append(missing, err)
				continue
			}
			rules = append(rules, rs...)
		}
	}
	if len(missing) > 0 {
		return rules, true, utilerrors.NewAggregate(missing)
	}
	return rules, false, nil
}

// RoleRules returns the rules of the role ref names, resolved from a
// binding in namespace ("" for a ClusterRoleBinding). A missing role is a
// NotFound error. The returned slice is shared and must not be modified.
func (r *RBAC) RoleRules(ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, error) {
	return r.roleRules(ref, namespace)
}

func (r *RBAC) roleRules(ref rbacv1.RoleRef, namespace string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		role, ok := r.src.GetRole(namespace, ref.Name)
		if !ok {
			return nil, apierrors.NewNotFound(rbacv1.Resource("role"), ref.Name)
		}
		return role.Rules, nil
	case "ClusterRole":
		role, ok := r.src.GetClusterRole(ref.Name)
		if !ok {
			return nil, apierrors.NewNotFound(rbacv1.Resource("clusterrole"), ref.Name)
		}
		return role.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// serviceAccountPrefix starts the user name of every ServiceAccount token.
const serviceAccountPrefix = "system:serviceaccount:"

// subjectIndex returns the index of the first subject u matches, or -1.
// As upstream, a ServiceAccount subject needs an explicit namespace even
// in a RoleBinding.
func subjectIndex(u *authn.User, subjects []rbacv1.Subject) int {
	for i := range subjects {
		if subjectMatches(u, &subjects[i]) {
			return i
		}
	}
	return -1
}

func subjectMatches(u *authn.User, s *rbacv1.Subject) bool {
	switch s.Kind {
	case rbacv1.UserKind:
		return u.Name == s.Name
	case rbacv1.GroupKind:
		for _, g := range u.Groups {
			if g == s.Name {
				return true
			}
		}
		return false
	case rbacv1.ServiceAccountKind:
		if s.Namespace == "" {
			return false
		}
		// Compare without building "system:serviceaccount:<ns>:<name>".
		rest, ok := strings.CutPrefix(u.Name, serviceAccountPrefix)
		if !ok {
			return false
		}
		ns, name, ok := strings.Cut(rest, ":")
		return ok && ns == s.Namespace && name == s.Name
	}
	return false
}

func describeSubject(s rbacv1.Subject) string {
	if s.Kind == rbacv1.ServiceAccountKind && s.Namespace != "" {
		return fmt.Sprintf("%s %q", s.Kind, s.Name+"/"+s.Namespace)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// RulesAllow reports whether any of rules allows a.
func RulesAllow(a Attributes, rules ...rbacv1.PolicyRule) bool {
	for i := range rules {
		if ruleAllows(&a, &rules[i]) {
			return true
		}
	}
	return false
}

func ruleAllows(a *Attributes, r *rbacv1.PolicyRule) bool {
	if !hasOrAll(r.Verbs, a.Verb, rbacv1.VerbAll) {
		return false
	}
	if !a.ResourceRequest {
		return nonResourceURLMatches(r.NonResourceURLs, a.Path)
	}
	return hasOrAll(r.APIGroups, a.APIGroup, rbacv1.APIGroupAll) &&
		resourceMatches(r.Resources, a.Resource, a.Subresource) &&
		resourceNameMatches(r.ResourceNames, a.Name)
}

func hasOrAll(list []string, want, all string) bool {
	for _, s := range list {
		if s == all || s == want {
			return true
		}
	}
	return false
}

// resourceMatches matches "*", the exact resource ("pods" or
// "pods/log"), and "*/<subresource>" for any resource's subresource.
func resourceMatches(ruleResources []string, resource, subresource string) bool {
	for _, rr := range ruleResources {
		if rr == rbacv1.ResourceAll {
			return true
		}
		if subresource == "" {
			if rr == resource {
				return true
			}
			continue
		}
		// rr == resource+"/"+subresource, without concatenating.
		if len(rr) == len(resource)+1+len(subresource) && strings.HasPrefix(rr, resource) &&
			rr[len(resource)] == '/' && strings.HasSuffix(rr, subresource) {
			return true
		}
		if len(rr) == len(subresource)+2 && strings.HasPrefix(rr, "*/") && strings.HasSuffix(rr, subresource) {
			return true
		}
	}
	return false
}

// resourceNameMatches: a rule without names matches any request; a rule
// with names matches only requests for one of them (so never a list,
// watch without a name selector, create or deletecollection).
func resourceNameMatches(names []string, name string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// nonResourceURLMatches matches "*", the exact path, and "prefix*".
func nonResourceURLMatches(urls []string, path string) bool {
	for _, u := range urls {
		if u == rbacv1.NonResourceAll || u == path {
			return true
		}
		if strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimRight(u, "*")) {
			return true
		}
	}
	return false
}
