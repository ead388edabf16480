package apiserver

import (
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	rolesGVR               = rbacv1.SchemeGroupVersion.WithResource("roles")
	roleBindingsGVR        = rbacv1.SchemeGroupVersion.WithResource("rolebindings")
	clusterRolesGVR        = rbacv1.SchemeGroupVersion.WithResource("clusterroles")
	clusterRoleBindingsGVR = rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings")
)

// rbacSource reads roles and bindings from the server's watch caches, so
// authorizing a request costs no etcd round trip. Objects are shared with
// the cache and must not be modified.
type rbacSource struct{ s *Server }

func (src rbacSource) cacheOf(gvr schema.GroupVersionResource) *resource { return src.s.resources[gvr] }

func (src rbacSource) GetRole(namespace, name string) (*rbacv1.Role, bool) {
	res := src.cacheOf(rolesGVR)
	e, ok := res.cache.Get(res.key(namespace, name))
	if !ok {
		return nil, false
	}
	r, ok := e.Obj.(*rbacv1.Role)
	return r, ok
}

func (src rbacSource) GetClusterRole(name string) (*rbacv1.ClusterRole, bool) {
	res := src.cacheOf(clusterRolesGVR)
	e, ok := res.cache.Get(res.key("", name))
	if !ok {
		return nil, false
	}
	r, ok := e.Obj.(*rbacv1.ClusterRole)
	return r, ok
}

func (src rbacSource) ListRoleBindings(namespace string) []*rbacv1.RoleBinding {
	res := src.cacheOf(roleBindingsGVR)
	entries, _ := res.cache.List(res.nsPrefix(namespace), nil)
	out := make([]*rbacv1.RoleBinding, 0, len(entries))
	for _, e := range entries {
		if b, ok := e.Obj.(*rbacv1.RoleBinding); ok {
			out = append(out, b)
		}
	}
	return out
}

func (src rbacSource) ListClusterRoleBindings() []*rbacv1.ClusterRoleBinding {
	res := src.cacheOf(clusterRoleBindingsGVR)
	entries, _ := res.cache.List(res.prefix, nil)
	out := make([]*rbacv1.ClusterRoleBinding, 0, len(entries))
	for _, e := range entries {
		if b, ok := e.Obj.(*rbacv1.ClusterRoleBinding); ok {
			out = append(out, b)
		}
	}
	return out
}
