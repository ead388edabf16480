package apiserver

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
	"github.com/skiff-dev/skiff/internal/apiserver/authz/bootstrappolicy"
	"github.com/skiff-dev/skiff/internal/storage"
)

// bootstrapRBAC reconciles the default RBAC policy as upstream's API server
// does at start: missing objects are created; existing ones, unless
// annotated autoupdate "false", gain missing labels, annotations, rules,
// aggregation selectors and subjects, and nothing is removed. A binding
// whose roleRef differs is recreated. Objects are compared with the watch
// caches, so a start with everything in place writes nothing.
func (s *Server) bootstrapRBAC(ctx context.Context) error {
	for _, r := range bootstrappolicy.ClusterRoles() {
		if err := s.reconcileRBAC(ctx, clusterRolesGVR, &r); err != nil {
			return err
		}
	}
	for _, b := range bootstrappolicy.ClusterRoleBindings() {
		if err := s.reconcileRBAC(ctx, clusterRoleBindingsGVR, &b); err != nil {
			return err
		}
	}
	for _, roles := range bootstrappolicy.NamespaceRoles() {
		for _, r := range roles {
			if err := s.reconcileRBAC(ctx, rolesGVR, &r); err != nil {
				return err
			}
		}
	}
	for _, bindings := range bootstrappolicy.NamespaceRoleBindings() {
		for _, b := range bindings {
			if err := s.reconcileRBAC(ctx, roleBindingsGVR, &b); err != nil {
				return err
			}
		}
	}
	return nil
}

// reconcileRBAC makes one default object exist with at least want's
// content.
func (s *Server) reconcileRBAC(ctx context.Context, gvr schema.GroupVersionResource, want runtime.Object) error {
	res := s.resources[gvr]
	if res == nil {
		return fmt.Errorf("rbac bootstrap: %s not served", gvr.Resource)
	}
	wm, _ := meta.Accessor(want)
	ns, name := wm.GetNamespace(), wm.GetName()
	if e, ok := res.cache.Get(res.key(ns, name)); ok {
		next := e.Obj.DeepCopyObject()
		switch reconcileInto(next, want) {
		case unchanged:
			return nil
		case recreate:
			return s.recreateRBAC(ctx, res, want)
		}
		return s.updateRBAC(ctx, res, want)
	}
	err := s.createRBAC(ctx, res, want)
	if isAlreadyExists(err) || errors.Is(err, storage.ErrExists) {
		// Another server created it since the cache was read.
		return s.updateRBAC(ctx, res, want)
	}
	return err
}

func (s *Server) createRBAC(ctx context.Context, res *resource, want runtime.Object) error {
	obj := want.DeepCopyObject()
	m, _ := meta.Accessor(obj)
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.Now())
	if res.Default != nil {
		res.Default(obj)
	}
	if _, err := res.create(ctx, obj); err != nil {
		return fmt.Errorf("create %s %s: %w", res.Kind, m.GetName(), err)
	}
	return nil
}

func (s *Server) updateRBAC(ctx context.Context, res *resource, want runtime.Object) error {
	wm, _ := meta.Accessor(want)
	needsRecreate := false
	_, err := res.guaranteedUpdate(ctx, wm.GetNamespace(), wm.GetName(), func(cur runtime.Object) (runtime.Object, error) {
		needsRecreate = reconcileInto(cur, want) == recreate
		return cur, nil
	})
	if err != nil {
		return fmt.Errorf("reconcile %s %s: %w", res.Kind, wm.GetName(), err)
	}
	if needsRecreate {
		return s.recreateRBAC(ctx, res, want)
	}
	return nil
}

// recreateRBAC replaces a binding whose roleRef, which cannot be updated,
// differs from the default's; subjects the existing binding had are kept.
func (s *Server) recreateRBAC(ctx context.Context, res *resource, want runtime.Object) error {
	wm, _ := meta.Accessor(want)
	cur, rev, err := res.get(ctx, wm.GetNamespace(), wm.GetName())
	if err != nil {
		return fmt.Errorf("reconcile %s %s: %w", res.Kind, wm.GetName(), err)
	}
	next := want.DeepCopyObject()
	reconcileInto(next, cur) // keep the existing subjects, labels and annotations
	if _, err := res.deleteNow(ctx, wm.GetNamespace(), wm.GetName(), rev, cur); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("recreate %s %s: %w", res.Kind, wm.GetName(), err)
	}
	return s.createRBAC(ctx, res, next)
}

type reconcileResult int

const (
	unchanged reconcileResult = iota
	updated
	recreate
)

// reconcileInto merges want into cur (both of the same RBAC kind) with
// upstream's union semantics and says whether cur changed. A cur annotated
// autoupdate "false" is left alone.
func reconcileInto(cur, want runtime.Object) reconcileResult {
	cm, _ := meta.Accessor(cur)
	if cm.GetAnnotations()[bootstrappolicy.AutoUpdateAnnotation] == "false" {
		return unchanged
	}
	wm, _ := meta.Accessor(want)
	result := unchanged
	if l, ok := mergeMap(cm.GetLabels(), wm.GetLabels()); ok {
		cm.SetLabels(l)
		result = updated
	}
	if a, ok := mergeMap(cm.GetAnnotations(), wm.GetAnnotations()); ok {
		cm.SetAnnotations(a)
		result = updated
	}
	more := func(changed bool) {
		if changed && result == unchanged {
			result = updated
		}
	}
	switch c := cur.(type) {
	case *rbacv1.ClusterRole:
		w := want.(*rbacv1.ClusterRole)
		more(mergeRules(&c.Rules, w.Rules))
		more(mergeAggregation(c, w))
	case *rbacv1.Role:
		more(mergeRules(&c.Rules, want.(*rbacv1.Role).Rules))
	case *rbacv1.ClusterRoleBinding:
		w := want.(*rbacv1.ClusterRoleBinding)
		more(mergeSubjects(&c.Subjects, w.Subjects))
		if c.RoleRef != w.RoleRef {
			return recreate
		}
	case *rbacv1.RoleBinding:
		w := want.(*rbacv1.RoleBinding)
		more(mergeSubjects(&c.Subjects, w.Subjects))
		if c.RoleRef != w.RoleRef {
			return recreate
		}
	}
	return result
}

// mergeMap adds the keys of want missing from cur.
func mergeMap(cur, want map[string]string) (map[string]string, bool) {
	changed := false
	for k, v := range want {
		if _, ok := cur[k]; ok {
			continue
		}
		if !changed {
			cp := make(map[string]string, len(cur)+len(want))
			for k2, v2 := range cur {
				cp[k2] = v2
			}
			cur, changed = cp, true
		}
		cur[k] = v
	}
	return cur, changed
}

// mergeRules appends the permissions of want that cur does not cover.
func mergeRules(cur *[]rbacv1.PolicyRule, want []rbacv1.PolicyRule) bool {
	ok, missing := authz.Covers(*cur, want)
	if ok {
		return false
	}
	*cur = append(*cur, missing...)
	return true
}

// mergeAggregation adds the aggregation selectors of want that cur lacks.
func mergeAggregation(cur, want *rbacv1.ClusterRole) bool {
	if want.AggregationRule == nil {
		return false
	}
	changed := false
	for _, sel := range want.AggregationRule.ClusterRoleSelectors {
		if cur.AggregationRule == nil {
			cur.AggregationRule = &rbacv1.AggregationRule{}
		}
		found := false
		for _, have := range cur.AggregationRule.ClusterRoleSelectors {
			if reflect.DeepEqual(have, sel) {
				found = true
				break
			}
		}
		if !found {
			cur.AggregationRule.ClusterRoleSelectors = append(cur.AggregationRule.ClusterRoleSelectors, *sel.DeepCopy())
			changed = true
		}
	}
	return changed
}

// mergeSubjects adds the subjects of want that cur lacks.
func mergeSubjects(cur *[]rbacv1.Subject, want []rbacv1.Subject) bool {
	changed := false
	for _, w := range want {
		found := false
		for _, c := range *cur {
			if c.Kind == w.Kind && c.Name == w.Name && c.Namespace == w.Namespace {
				found = true
				break
			}
		}
		if !found {
			*cur = append(*cur, w)
			changed = true
		}
	}
	return changed
}
