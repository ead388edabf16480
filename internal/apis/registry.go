package apis

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// groupOrder is the order in which groups appear in discovery, as upstream
// lists them: by kube-aggregator's group priority, highest first, ties by name.
var groupOrder = []string{
	"", "apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
	"certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
	"apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "resource.k8s.io",
	"flowcontrol.apiserver.k8s.io", "storagemigration.k8s.io",
}

// versionOrder lists the versions of a group served in more than one, the
// preferred first, as upstream's discovery does.
var versionOrder = map[string][]string{"autoscaling": {"v2", "v1"}}

// def is shorthand for building a Resource.
func def(gv schema.GroupVersion, resource, singular, kind string, namespaced bool,
	newObj func() runtime.Object, newList func() runtime.Object, shortNames ...string) *Resource {
	return &Resource{
		GVR:          gv.WithResource(resource),
		Kind:         kind,
		SingularName: singular,
		Namespaced:   namespaced,
		ShortNames:   shortNames,
		New:          newObj,
		NewList:      newList,
	}
}

// review builds a create-only resource: a question posted to the server
// (who is this token, may this user do that) whose answer is returned and
// never stored.
func review(gv schema.GroupVersion, resource, kind string, namespaced bool, newObj func() runtime.Object) *Resource {
	r := def(gv, resource, strings.ToLower(kind), kind, namespaced, newObj, nil)
	r.CreateOnly = true
	return r
}

func (r *Resource) with(subresources ...string) *Resource {
	r.Subresources = append(r.Subresources, subresources...)
	return r
}

func (r *Resource) inAll() *Resource {
	r.Categories = append(r.Categories, "all")
	return r
}

func (r *Resource) orphaning() *Resource {
	r.OrphanByDefault = true
	return r
}

// All returns every built-in resource Skiff serves, with its behaviour.
func All() []*Resource {
	core := corev1.SchemeGroupVersion
	apps := appsv1.SchemeGroupVersion
	batch := batchv1.SchemeGroupVersion
	rs := []*Resource{
		def(core, "namespaces", "namespace", "Namespace", false,
			func() runtime.Object { return &corev1.Namespace{} }, func() runtime.Object { return &corev1.NamespaceList{} }, "ns").with("status", "finalize"),
		def(core, "pods", "pod", "Pod", true,
			func() runtime.Object { return &corev1.Pod{} }, func() runtime.Object { return &corev1.PodList{} }, "po").with("status", "binding", "eviction", "ephemeralcontainers", "resize").inAll(),
		def(core, "services", "service", "Service", true,
			func() runtime.Object { return &corev1.Service{} }, func() runtime.Object { return &corev1.ServiceList{} }, "svc").with("status").inAll(),
		def(core, "endpoints", "endpoints", "Endpoints", true,
			func() runtime.Object { return &corev1.Endpoints{} }, func() runtime.Object { return &corev1.EndpointsList{} }, "ep"),
		def(core, "configmaps", "configmap", "ConfigMap", true,
			func() runtime.Object { return &corev1.ConfigMap{} }, func() runtime.Object { return &corev1.ConfigMapList{} }, "cm"),
		def(core, "secrets", "secret", "Secret", true,
			func() runtime.Object { return &corev1.Secret{} }, func() runtime.Object { return &corev1.SecretList{} }),
		def(core, "serviceaccounts", "serviceaccount", "ServiceAccount", true,
			func() runtime.Object { return &corev1.ServiceAccount{} }, func() runtime.Object { return &corev1.ServiceAccountList{} }, "sa").with("token"),
		def(core, "nodes", "node", "Node", false,
			func() runtime.Object { return &corev1.Node{} }, func() runtime.Object { return &corev1.NodeList{} }, "no").with("status"),
		def(core, "events", "event", "Event", true,
			func() runtime.Object { return &corev1.Event{} }, func() runtime.Object { return &corev1.EventList{} }, "ev"),
		def(core, "persistentvolumes", "persistentvolume", "PersistentVolume", false,
			func() runtime.Object { return &corev1.PersistentVolume{} }, func() runtime.Object { return &corev1.PersistentVolumeList{} }, "pv").with("status"),
		def(core, "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true,
			func() runtime.Object { return &corev1.PersistentVolumeClaim{} }, func() runtime.Object { return &corev1.PersistentVolumeClaimList{} }, "pvc").with("status"),
		def(core, "replicationcontrollers", "replicationcontroller", "ReplicationController", true,
			func() runtime.Object { return &corev1.ReplicationController{} }, func() runtime.Object { return &corev1.ReplicationControllerList{} }, "rc").with("status", "scale").inAll().orphaning(),
		def(core, "resourcequotas", "resourcequota", "ResourceQuota", true,
			func() runtime.Object { return &corev1.ResourceQuota{} }, func() runtime.Object { return &corev1.ResourceQuotaList{} }, "quota").with("status"),
		def(core, "limitranges", "limitrange", "LimitRange", true,
			func() runtime.Object { return &corev1.LimitRange{} }, func() runtime.Object { return &corev1.LimitRangeList{} }, "limits"),
		def(core, "podtemplates", "podtemplate", "PodTemplate", true,
			func() runtime.Object { return &corev1.PodTemplate{} }, func() runtime.Object { return &corev1.PodTemplateList{} }),

		def(apps, "deployments", "deployment", "Deployment", true,
			func() runtime.Object { return &appsv1.Deployment{} }, func() runtime.Object { return &appsv1.DeploymentList{} }, "deploy").with("status", "scale").inAll(),
		def(apps, "replicasets", "replicaset", "ReplicaSet", true,
			func() runtime.Object { return &appsv1.ReplicaSet{} }, func() runtime.Object { return &appsv1.ReplicaSetList{} }, "rs").with("status", "scale").inAll(),
		def(apps, "statefulsets", "statefulset", "StatefulSet", true,
			func() runtime.Object { return &appsv1.StatefulSet{} }, func() runtime.Object { return &appsv1.StatefulSetList{} }, "sts").with("status", "scale").inAll(),
		def(apps, "daemonsets", "daemonset", "DaemonSet", true,
			func() runtime.Object { return &appsv1.DaemonSet{} }, func() runtime.Object { return &appsv1.DaemonSetList{} }, "ds").with("status").inAll(),
		def(apps, "controllerrevisions", "controllerrevision", "ControllerRevision", true,
			func() runtime.Object { return &appsv1.ControllerRevision{} }, func() runtime.Object { return &appsv1.ControllerRevisionList{} }),

		def(eventsv1.SchemeGroupVersion, "events", "event", "Event", true,
			func() runtime.Object { return &eventsv1.Event{} }, func() runtime.Object { return &eventsv1.EventList{} }, "ev").storedAs(eventStorage),

		review(authenticationv1.SchemeGroupVersion, "tokenreviews", "TokenReview", false, func() runtime.Object { return &authenticationv1.TokenReview{} }),
		review(authenticationv1.SchemeGroupVersion, "selfsubjectreviews", "SelfSubjectReview", false, func() runtime.Object { return &authenticationv1.SelfSubjectReview{} }),
		review(authorizationv1.SchemeGroupVersion, "subjectaccessreviews", "SubjectAccessReview", false, func() runtime.Object { return &authorizationv1.SubjectAccessReview{} }),
		review(authorizationv1.SchemeGroupVersion, "localsubjectaccessreviews", "LocalSubjectAccessReview", true, func() runtime.Object { return &authorizationv1.LocalSubjectAccessReview{} }),
		review(authorizationv1.SchemeGroupVersion, "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} }),
		review(authorizationv1.SchemeGroupVersion, "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, func() runtime.Object { return &authorizationv1.SelfSubjectRulesReview{} }),

		def(batch, "jobs", "job", "Job", true,
			func() runtime.Object { return &batchv1.Job{} }, func() runtime.Object { return &batchv1.JobList{} }).with("status").inAll().orphaning(),
		def(batch, "cronjobs", "cronjob", "CronJob", true,
			func() runtime.Object { return &batchv1.CronJob{} }, func() runtime.Object { return &batchv1.CronJobList{} }, "cj").with("status").inAll(),

		def(certificatesv1.SchemeGroupVersion, "certificatesigningrequests", "certificatesigningrequest", "CertificateSigningRequest", false,
			func() runtime.Object { return &certificatesv1.CertificateSigningRequest{} },
			func() runtime.Object { return &certificatesv1.CertificateSigningRequestList{} }, "csr").with("status", "approval"),

		def(coordinationv1.SchemeGroupVersion, "leases", "lease", "Lease", true,
			func() runtime.Object { return &coordinationv1.Lease{} }, func() runtime.Object { return &coordinationv1.LeaseList{} }),
		def(discoveryv1.SchemeGroupVersion, "endpointslices", "endpointslice", "EndpointSlice", true,
			func() runtime.Object { return &discoveryv1.EndpointSlice{} }, func() runtime.Object { return &discoveryv1.EndpointSliceList{} }),

		def(networkingv1.SchemeGroupVersion, "ingresses", "ingress", "Ingress", true,
			func() runtime.Object { return &networkingv1.Ingress{} }, func() runtime.Object { return &networkingv1.IngressList{} }, "ing").with("status"),
		def(networkingv1.SchemeGroupVersion, "ingressclasses", "ingressclass", "IngressClass", false,
			func() runtime.Object { return &networkingv1.IngressClass{} }, func() runtime.Object { return &networkingv1.IngressClassList{} }),
		def(networkingv1.SchemeGroupVersion, "networkpolicies", "networkpolicy", "NetworkPolicy", true,
			func() runtime.Object { return &networkingv1.NetworkPolicy{} }, func() runtime.Object { return &networkingv1.NetworkPolicyList{} }, "netpol"),

		def(policyv1.SchemeGroupVersion, "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true,
			func() runtime.Object { return &policyv1.PodDisruptionBudget{} }, func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} }, "pdb").with("status"),

		def(rbacv1.SchemeGroupVersion, "roles", "role", "Role", true,
			func() runtime.Object { return &rbacv1.Role{} }, func() runtime.Object { return &rbacv1.RoleList{} }),
		def(rbacv1.SchemeGroupVersion, "clusterroles", "clusterrole", "ClusterRole", false,
			func() runtime.Object { return &rbacv1.ClusterRole{} }, func() runtime.Object { return &rbacv1.ClusterRoleList{} }),
		def(rbacv1.SchemeGroupVersion, "rolebindings", "rolebinding", "RoleBinding", true,
			func() runtime.Object { return &rbacv1.RoleBinding{} }, func() runtime.Object { return &rbacv1.RoleBindingList{} }),
		def(rbacv1.SchemeGroupVersion, "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false,
			func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }, func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} }),

		def(storagev1.SchemeGroupVersion, "storageclasses", "storageclass", "StorageClass", false,
			func() runtime.Object { return &storagev1.StorageClass{} }, func() runtime.Object { return &storagev1.StorageClassList{} }, "sc"),

		def(schedulingv1.SchemeGroupVersion, "priorityclasses", "priorityclass", "PriorityClass", false,
			func() runtime.Object { return &schedulingv1.PriorityClass{} }, func() runtime.Object { return &schedulingv1.PriorityClassList{} }, "pc"),
	}
	for _, r := range rs {
		attachBehaviour(r)
	}
	rs = append(rs, nodeResources()...)
	rs = append(rs, netAndLegacyResources()...)
	rs = append(rs, moreResources()...)
	rs = append(rs, flowControlResources()...)
	rs = append(rs, admissionResources()...)
	rs = append(rs, apiRegistrationResources()...)
	rs = append(rs, apiextensionsResources()...)
	return rs
}

// Registry finds resources by group/version/resource or by kind.
type Registry struct {
	byGVR map[schema.GroupVersionResource]*Resource
	byGVK map[schema.GroupVersionKind]*Resource
	gvs   []schema.GroupVersion
}

// NewRegistry indexes rs.
func NewRegistry(rs []*Resource) *Registry {
	reg := &Registry{byGVR: map[schema.GroupVersionResource]*Resource{}, byGVK: map[schema.GroupVersionKind]*Resource{}}
	seen := map[schema.GroupVersion]bool{}
	for _, r := range rs {
		reg.byGVR[r.GVR] = r
		reg.byGVK[r.GVR.GroupVersion().WithKind(r.Kind)] = r
		seen[r.GVR.GroupVersion()] = true
	}
	for _, g := range groupOrder {
		for _, v := range versionOrder[g] {
			if gv := (schema.GroupVersion{Group: g, Version: v}); seen[gv] {
				reg.gvs = append(reg.gvs, gv)
				delete(seen, gv)
			}
		}
		for gv := range seen {
			if gv.Group == g {
				reg.gvs = append(reg.gvs, gv)
				delete(seen, gv)
			}
		}
	}
	for gv := range seen {
		reg.gvs = append(reg.gvs, gv) // groups added later (CRDs) come last
	}
	return reg
}

// Lookup finds a resource by group, version and plural name.
func (reg *Registry) Lookup(group, version, resource string) (*Resource, bool) {
	r, ok := reg.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
	return r, ok
}

// ByKind finds a resource by its kind.
func (reg *Registry) ByKind(gvk schema.GroupVersionKind) (*Resource, bool) {
	r, ok := reg.byGVK[gvk]
	return r, ok
}

// GroupVersions lists the served group-versions in discovery order.
func (reg *Registry) GroupVersions() []schema.GroupVersion { return reg.gvs }
