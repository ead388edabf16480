package bootstrappolicy

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations every default object carries, as upstream's.
const (
	BootstrappingLabel   = "kubernetes.io/bootstrapping"
	BootstrappingValue   = "rbac-defaults"
	AutoUpdateAnnotation = "rbac.authorization.kubernetes.io/autoupdate"

	aggregateToAdmin = "rbac.authorization.k8s.io/aggregate-to-admin"
	aggregateToEdit  = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToView  = "rbac.authorization.k8s.io/aggregate-to-view"
)

// rule builds a PolicyRule: rule(verbs...).groups(...).res(...).
type rule rbacv1.PolicyRule

func newRule(verbs ...string) rule { return rule{Verbs: verbs} }

func (r rule) groups(g ...string) rule { r.APIGroups = g; return r }
func (r rule) res(rs ...string) rule   { r.Resources = rs; return r }
func (r rule) names(n ...string) rule  { r.ResourceNames = n; return r }
func (r rule) urls(u ...string) rule   { r.NonResourceURLs = u; return r }

func rules(rs ...rule) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(rs))
	for i, r := range rs {
		out[i] = rbacv1.PolicyRule(r)
	}
	return out
}

// Groups and verb sets the policy uses often.
const (
	legacyGroup         = ""
	appsGroup           = "apps"
	authenticationGroup = "authentication.k8s.io"
	authorizationGroup  = "authorization.k8s.io"
	autoscalingGroup    = "autoscaling"
	batchGroup          = "batch"
	certificatesGroup   = "certificates.k8s.io"
	coordinationGroup   = "coordination.k8s.io"
	discoveryGroup      = "discovery.k8s.io"
	eventsGroup         = "events.k8s.io"
	extensionsGroup     = "extensions"
	networkingGroup     = "networking.k8s.io"
	nodeGroup           = "node.k8s.io"
	policyGroup         = "policy"
	rbacGroup           = rbacv1.GroupName
	resourceGroup       = "resource.k8s.io"
	storageGroup        = "storage.k8s.io"
	admissionGroup      = "admissionregistration.k8s.io"
)

var (
	read  = []string{"get", "list", "watch"}
	write = []string{"create", "delete", "deletecollection", "patch", "update"}
	rw    = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

// eventsRule lets a component record events in both event APIs.
func eventsRule() rule {
	return newRule("create", "patch", "update").groups(legacyGroup, eventsGroup).res("events")
}

func defaultMeta(name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{BootstrappingLabel: BootstrappingValue}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{
		Name:        name,
		Labels:      l,
		Annotations: map[string]string{AutoUpdateAnnotation: "true"},
	}
}

func clusterRole(name string, rs ...rule) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: defaultMeta(name, nil),
		Rules:      rules(rs...),
	}
}

func role(ns, name string, rs ...rule) rbacv1.Role {
	m := defaultMeta(name, nil)
	m.Namespace = ns
	return rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: m,
		Rules:      rules(rs...),
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacGroup, Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacGroup, Name: name}
}

func saSubject(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
}

func clusterRoleBinding(name, roleName string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: defaultMeta(name, nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: roleName},
		Subjects:   subjects,
	}
}

func roleBinding(ns, name, roleName string, subjects ...rbacv1.Subject) rbacv1.RoleBinding {
	m := defaultMeta(name, nil)
	m.Namespace = ns
	return rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: m,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "Role", Name: roleName},
		Subjects:   subjects,
	}
}
