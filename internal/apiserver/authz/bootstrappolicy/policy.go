// Package bootstrappolicy is the default RBAC policy every cluster has:
// upstream Kubernetes' roles and bindings for users, components, nodes and
// controllers, plus what a kubeadm cluster adds so that nodes can join.
// The API server reconciles it at start.
package bootstrappolicy

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known users and groups of the default policy.
const (
	groupMasters         = "system:masters"
	groupAuthenticated   = "system:authenticated"
	groupUnauthenticated = "system:unauthenticated"
	groupNodes           = "system:nodes"
	groupBootstrappers   = "system:bootstrappers"
	groupServiceAccounts = "system:serviceaccounts"
	groupMonitoring      = "system:monitoring"

	userAnonymous         = "system:anonymous"
	userKubeProxy         = "system:kube-proxy"
	userScheduler         = "system:kube-scheduler"
	userControllerManager = "system:kube-controller-manager"
)

// NodeRules are the rules of system:node, which the Node authorizer uses
// (narrowed to the node's own objects).
func NodeRules() []rbacv1.PolicyRule {
	return rules(
		newRule("create").groups(authenticationGroup).res("tokenreviews"),
		newRule("create").groups(authorizationGroup).res("localsubjectaccessreviews", "subjectaccessreviews"),
		newRule(read...).groups(legacyGroup).res("services"),
		newRule("create", "get", "list", "watch").groups(legacyGroup).res("nodes"),
		newRule("patch", "update").groups(legacyGroup).res("nodes/status"),
		newRule("patch", "update").groups(legacyGroup).res("nodes"),
		newRule("create", "patch", "update").groups(legacyGroup).res("events"),
		newRule(read...).groups(legacyGroup).res("pods"),
		newRule("create", "delete").groups(legacyGroup).res("pods"),
		newRule("patch", "update").groups(legacyGroup).res("pods/status"),
		newRule("create").groups(legacyGroup).res("pods/eviction"),
		newRule(read...).groups(legacyGroup).res("configmaps", "secrets"),
		newRule("get").groups(legacyGroup).res("persistentvolumeclaims", "persistentvolumes"),
		newRule("get").groups(legacyGroup).res("endpoints"),
		newRule("create", "get", "list", "watch").groups(certificatesGroup).res("certificatesigningrequests"),
		newRule("create", "delete", "get", "patch", "update").groups(coordinationGroup).res("leases"),
		newRule("get").groups(storageGroup).res("volumeattachments"),
		newRule("create").groups(legacyGroup).res("serviceaccounts/token"),
		newRule("get", "patch", "update").groups(legacyGroup).res("persistentvolumeclaims/status"),
		newRule(read...).groups(storageGroup).res("csidrivers"),
		newRule("create", "delete", "get", "patch", "update").groups(storageGroup).res("csinodes"),
		newRule(read...).groups(nodeGroup).res("runtimeclasses"),
		newRule("get").groups(resourceGroup).res("resourceclaims"),
		newRule("deletecollection").groups(resourceGroup).res("resourceslices"),
		newRule("get", "list", "watch").groups(certificatesGroup).res("clustertrustbundles"),
		newRule("get", "list", "watch", "create").groups(certificatesGroup).res("podcertificaterequests"),
	)
}

// ClusterRoles returns the default ClusterRoles, controller roles included.
func ClusterRoles() []rbacv1.ClusterRole {
	roles := []rbacv1.ClusterRole{
		clusterRole("cluster-admin",
			newRule("*").groups("*").res("*"),
			newRule("*").urls("*"),
		),
		aggregatedRole("admin", aggregateToAdmin, ""),
		aggregatedRole("edit", aggregateToEdit, aggregateToAdmin),
		aggregatedRole("view", aggregateToView, aggregateToEdit),
		withLabel(clusterRole("system:aggregate-to-admin",
			newRule("create").groups(authorizationGroup).res("localsubjectaccessreviews"),
			newRule(rw...).groups(rbacGroup).res("rolebindings", "roles"),
		), aggregateToAdmin),
		withLabel(clusterRole("system:aggregate-to-edit", aggregateToEditRules()...), aggregateToEdit),
		withLabel(clusterRole("system:aggregate-to-view", aggregateToViewRules()...), aggregateToView),
		clusterRole("system:auth-delegator",
			newRule("create").groups(authenticationGroup).res("tokenreviews"),
			newRule("create").groups(authorizationGroup).res("subjectaccessreviews"),
		),
		clusterRole("system:basic-user",
			newRule("create").groups(authorizationGroup).res("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			newRule("create").groups(authenticationGroup).res("selfsubjectreviews"),
		),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:nodeclient",
			newRule("create").groups(certificatesGroup).res("certificatesigningrequests/nodeclient"),
		),
		clusterRole("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
			newRule("create").groups(certificatesGroup).res("certificatesigningrequests/selfnodeclient"),
		),
		approverRole("kube-apiserver-client"),
		approverRole("kube-apiserver-client-kubelet"),
		approverRole("kubelet-serving"),
		approverRole("legacy-unknown"),
		clusterRole("system:discovery",
			newRule("get").urls("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
				"/openapi", "/openapi/*", "/readyz", "/version", "/version/"),
		),
		clusterRole("system:heapster",
			newRule(read...).groups(legacyGroup).res("events", "namespaces", "nodes", "pods"),
			newRule(read...).groups(extensionsGroup).res("deployments"),
		),
		clusterRole("system:kube-aggregator",
			newRule(read...).groups(legacyGroup).res("endpoints", "services"),
		),
		clusterRole("system:kube-controller-manager",
			eventsRule(),
			newRule("create").groups(coordinationGroup).res("leases"),
			newRule("get", "update").groups(coordinationGroup).res("leases").names("kube-controller-manager"),
			newRule("create").groups(legacyGroup).res("secrets", "serviceaccounts"),
			newRule("delete").groups(legacyGroup).res("secrets"),
			newRule("get").groups(legacyGroup).res("configmaps", "namespaces", "secrets", "serviceaccounts"),
			newRule("update").groups(legacyGroup).res("secrets", "serviceaccounts"),
			newRule("create").groups(authenticationGroup).res("tokenreviews"),
			newRule("create").groups(authorizationGroup).res("subjectaccessreviews"),
			newRule("list", "watch").groups("*").res("*"),
			newRule("create").groups(legacyGroup).res("serviceaccounts/token"),
		),
		clusterRole("system:kube-dns",
			newRule("list", "watch").groups(legacyGroup).res("endpoints", "services"),
		),
		clusterRole("system:kube-scheduler",
			eventsRule(),
			newRule("create").groups(coordinationGroup).res("leases"),
			newRule("get", "update").groups(coordinationGroup).res("leases").names("kube-scheduler"),
			newRule(read...).groups(legacyGroup).res("nodes"),
			newRule("delete", "get", "list", "watch").groups(legacyGroup).res("pods"),
			newRule("create").groups(legacyGroup).res("bindings", "pods/binding"),
			newRule("patch", "update").groups(legacyGroup).res("pods/status"),
			newRule(read...).groups(legacyGroup).res("replicationcontrollers", "services"),
			newRule(read...).groups(appsGroup, extensionsGroup).res("replicasets"),
			newRule(read...).groups(appsGroup).res("statefulsets"),
			newRule(read...).groups(policyGroup).res("poddisruptionbudgets"),
			newRule(read...).groups(legacyGroup).res("persistentvolumeclaims", "persistentvolumes"),
			newRule("create").groups(authenticationGroup).res("tokenreviews"),
			newRule("create").groups(authorizationGroup).res("subjectaccessreviews"),
			newRule(read...).groups(storageGroup).res("csinodes"),
			newRule("get", "list", "watch").groups(storageGroup).res("volumeattachments"),
			newRule(read...).groups(legacyGroup).res("namespaces"),
			newRule(read...).groups(storageGroup).res("csidrivers"),
			newRule(read...).groups(storageGroup).res("csistoragecapacities"),
			// Dynamic resource allocation (GA, with its default-on parts).
			newRule(read...).groups(resourceGroup).res("deviceclasses"),
			newRule("get", "list", "watch", "update", "patch").groups(resourceGroup).res("resourceclaims"),
			newRule("get", "list", "watch", "update", "patch").groups(resourceGroup).res("resourceclaims/status"),
			newRule("update").groups(legacyGroup).res("pods/finalizers"),
			newRule(read...).groups(resourceGroup).res("resourceslices"),
			newRule("create", "delete").groups(resourceGroup).res("resourceclaims"),
			newRule(read...).groups(resourceGroup).res("devicetaintrules"),
			newRule("update", "patch").groups(resourceGroup).res("resourceclaims/binding"),
		),
		clusterRole("system:cluster-trust-bundle-discovery",
			newRule(read...).groups(certificatesGroup).res("clustertrustbundles"),
		),
		clusterRole("system:kubelet-api-admin",
			newRule(read...).groups(legacyGroup).res("nodes"),
			newRule("proxy").groups(legacyGroup).res("nodes"),
			newRule("*").groups(legacyGroup).res("nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"),
		),
		clusterRole("system:monitoring",
			newRule("get").urls("/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"),
		),
		{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: defaultMeta("system:node", nil),
			Rules:      NodeRules(),
		},
		clusterRole("system:node-bootstrapper",
			newRule("create", "get", "list", "watch").groups(certificatesGroup).res("certificatesigningrequests"),
		),
		clusterRole("system:node-problem-detector",
			newRule("get").groups(legacyGroup).res("nodes"),
			newRule("patch").groups(legacyGroup).res("nodes/status"),
			eventsRule(),
		),
		clusterRole("system:node-proxier",
			newRule("list", "watch").groups(legacyGroup).res("endpoints", "services"),
			newRule(read...).groups(legacyGroup).res("nodes"),
			eventsRule(),
			newRule("list", "watch").groups(discoveryGroup).res("endpointslices"),
		),
		clusterRole("system:persistent-volume-provisioner",
			newRule("create", "delete", "get", "list", "watch").groups(legacyGroup).res("persistentvolumes"),
			newRule("get", "list", "update", "watch").groups(legacyGroup).res("persistentvolumeclaims"),
			newRule(read...).groups(storageGroup).res("storageclasses"),
			newRule("watch").groups(legacyGroup).res("events"),
			eventsRule(),
		),
		clusterRole("system:public-info-viewer",
			newRule("get").urls("/healthz", "/livez", "/readyz", "/version", "/version/"),
		),
		clusterRole("system:service-account-issuer-discovery",
			newRule("get").urls("/.well-known/openid-configuration", "/openid/v1/jwks"),
		),
		clusterRole("system:volume-scheduler",
			newRule("get", "list", "patch", "update", "watch").groups(legacyGroup).res("persistentvolumes"),
			newRule(read...).groups(storageGroup).res("storageclasses"),
			newRule("get", "list", "patch", "update", "watch").groups(legacyGroup).res("persistentvolumeclaims"),
		),
	}
	return append(roles, controllerRoles()...)
}

func aggregateToEditRules() []rule {
	return []rule{
		newRule(read...).groups(legacyGroup).res("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
		newRule("impersonate").groups(legacyGroup).res("serviceaccounts"),
		newRule(write...).groups(legacyGroup).res("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
		newRule("create").groups(legacyGroup).res("pods/eviction"),
		newRule(write...).groups(legacyGroup).res("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
			"replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
		newRule("create").groups(legacyGroup).res("serviceaccounts/token"),
		newRule(write...).groups(appsGroup).res("daemonsets", "deployments", "deployments/rollback", "deployments/scale",
			"replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"),
		newRule(write...).groups(autoscalingGroup).res("horizontalpodautoscalers"),
		newRule(write...).groups(batchGroup).res("cronjobs", "jobs"),
		newRule(write...).groups(extensionsGroup).res("daemonsets", "deployments", "deployments/rollback", "deployments/scale",
			"ingresses", "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"),
		newRule(write...).groups(policyGroup).res("poddisruptionbudgets"),
		newRule(write...).groups(networkingGroup).res("ingresses", "networkpolicies"),
		newRule(rw...).groups(coordinationGroup).res("leases"),
		newRule(write...).groups(resourceGroup).res("resourceclaims", "resourceclaimtemplates"),
	}
}

func aggregateToViewRules() []rule {
	return []rule{
		newRule(read...).groups(legacyGroup).res("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
			"pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"),
		newRule(read...).groups(legacyGroup).res("bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
			"replicationcontrollers/status", "resourcequotas", "resourcequotas/status"),
		newRule(read...).groups(legacyGroup).res("namespaces"),
		newRule(read...).groups(discoveryGroup).res("endpointslices"),
		newRule(read...).groups(appsGroup).res("controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
			"deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status",
			"statefulsets", "statefulsets/scale", "statefulsets/status"),
		newRule(read...).groups(autoscalingGroup).res("horizontalpodautoscalers", "horizontalpodautoscalers/status"),
		newRule(read...).groups(batchGroup).res("cronjobs", "cronjobs/status", "jobs", "jobs/status"),
		newRule(read...).groups(extensionsGroup).res("daemonsets", "daemonsets/status", "deployments", "deployments/scale",
			"deployments/status", "ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale",
			"replicasets/status", "replicationcontrollers/scale"),
		newRule(read...).groups(policyGroup).res("poddisruptionbudgets", "poddisruptionbudgets/status"),
		newRule(read...).groups(networkingGroup).res("ingresses", "ingresses/status", "networkpolicies"),
		newRule(read...).groups(resourceGroup).res("resourceclaims", "resourceclaims/status", "resourceclaimtemplates"),
	}
}

// aggregatedRole is admin, edit or view: no rules of its own, gathering
// those of the roles labelled selector; label, when set, makes it part of
// the next broader role.
func aggregatedRole(name, selector, label string) rbacv1.ClusterRole {
	r := clusterRole(name)
	r.Rules = nil
	r.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
		{MatchLabels: map[string]string{selector: "true"}},
	}}
	if label != "" {
		r = withLabel(r, label)
	}
	return r
}

func withLabel(r rbacv1.ClusterRole, label string) rbacv1.ClusterRole {
	r.Labels[label] = "true"
	return r
}

// approverRole may approve CSRs for one of the built-in signers.
func approverRole(signer string) rbacv1.ClusterRole {
	return clusterRole("system:certificates.k8s.io:"+signer+"-approver",
		newRule("approve").groups(certificatesGroup).res("signers").names("kubernetes.io/"+signer))
}

// ClusterRoleBindings returns the default ClusterRoleBindings, controller
// bindings and the join bindings of a kubeadm cluster included.
func ClusterRoleBindings() []rbacv1.ClusterRoleBinding {
	bindings := []rbacv1.ClusterRoleBinding{
		clusterRoleBinding("cluster-admin", "cluster-admin", groupSubject(groupMasters)),
		clusterRoleBinding("system:basic-user", "system:basic-user", groupSubject(groupAuthenticated)),
		clusterRoleBinding("system:discovery", "system:discovery", groupSubject(groupAuthenticated)),
		clusterRoleBinding("system:kube-controller-manager", "system:kube-controller-manager", userSubject(userControllerManager)),
		clusterRoleBinding("system:kube-dns", "system:kube-dns", saSubject("kube-system", "kube-dns")),
		clusterRoleBinding("system:kube-scheduler", "system:kube-scheduler", userSubject(userScheduler)),
		clusterRoleBinding("system:monitoring", "system:monitoring", groupSubject(groupMonitoring)),
		// Upstream keeps system:node unbound: the Node authorizer grants it.
		clusterRoleBinding("system:node", "system:node"),
		clusterRoleBinding("system:node-proxier", "system:node-proxier", userSubject(userKubeProxy)),
		clusterRoleBinding("system:public-info-viewer", "system:public-info-viewer",
			groupSubject(groupAuthenticated), groupSubject(groupUnauthenticated)),
		clusterRoleBinding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
			groupSubject(groupServiceAccounts)),
		clusterRoleBinding("system:volume-scheduler", "system:volume-scheduler", userSubject(userScheduler)),
		clusterRoleBinding("system:cluster-trust-bundle-discovery", "system:cluster-trust-bundle-discovery", groupSubject(groupServiceAccounts)),

		// What kubeadm adds so that bootstrap tokens can join nodes and
		// nodes can renew their client certificates.
		clusterRoleBinding("skiff:kubelet-bootstrap", "system:node-bootstrapper", groupSubject(groupBootstrappers)),
		clusterRoleBinding("skiff:node-autoapprove-bootstrap",
			"system:certificates.k8s.io:certificatesigningrequests:nodeclient", groupSubject(groupBootstrappers)),
		clusterRoleBinding("skiff:node-autoapprove-certificate-rotation",
			"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", groupSubject(groupNodes)),
	}
	for _, r := range controllerRoles() {
		name := r.Name
		bindings = append(bindings, clusterRoleBinding(name, name,
			saSubject("kube-system", name[len(controllerRolePrefix):])))
	}
	return bindings
}

// NamespaceRoles returns the default Roles by namespace.
func NamespaceRoles() map[string][]rbacv1.Role {
	return map[string][]rbacv1.Role{
		"kube-public": {
			role("kube-public", "system:controller:bootstrap-signer",
				newRule(read...).groups(legacyGroup).res("configmaps"),
				newRule("update").groups(legacyGroup).res("configmaps").names("cluster-info"),
				eventsRule(),
			),
			// kubeadm lets anyone read cluster-info, which joining
			// nodes verify against the CA hash they were given.
			role("kube-public", "skiff:bootstrap-signer-clusterinfo",
				newRule("get").groups(legacyGroup).res("configmaps").names("cluster-info"),
			),
		},
		"kube-system": {
			role("kube-system", "extension-apiserver-authentication-reader",
				newRule(read...).groups(legacyGroup).res("configmaps").names("extension-apiserver-authentication"),
			),
			role("kube-system", "system::leader-locking-kube-controller-manager", leaderLockingRules()...),
			role("kube-system", "system::leader-locking-kube-scheduler", leaderLockingRules()...),
			role("kube-system", "system:controller:bootstrap-signer",
				newRule(read...).groups(legacyGroup).res("secrets"),
			),
			role("kube-system", "system:controller:cloud-provider",
				newRule("create", "get", "list", "watch").groups(legacyGroup).res("configmaps"),
			),
			role("kube-system", "system:controller:token-cleaner",
				newRule("delete", "get", "list", "watch").groups(legacyGroup).res("secrets"),
				eventsRule(),
			),
		},
	}
}

func leaderLockingRules() []rule {
	return []rule{
		newRule("create", "get", "list", "update", "watch").groups(coordinationGroup).res("leases"),
		newRule("create", "get", "list", "update", "watch").groups(coordinationGroup).res("leasecandidates"),
	}
}

// NamespaceRoleBindings returns the default RoleBindings by namespace.
func NamespaceRoleBindings() map[string][]rbacv1.RoleBinding {
	return map[string][]rbacv1.RoleBinding{
		"kube-public": {
			roleBinding("kube-public", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
				saSubject("kube-system", "bootstrap-signer")),
			roleBinding("kube-public", "skiff:bootstrap-signer-clusterinfo", "skiff:bootstrap-signer-clusterinfo",
				userSubject(userAnonymous)),
		},
		"kube-system": {
			roleBinding("kube-system", "system::extension-apiserver-authentication-reader", "extension-apiserver-authentication-reader",
				userSubject(userControllerManager), userSubject(userScheduler)),
			roleBinding("kube-system", "system::leader-locking-kube-controller-manager", "system::leader-locking-kube-controller-manager",
				userSubject(userControllerManager), saSubject("kube-system", "kube-controller-manager"),
				saSubject("kube-system", "leader-election-controller")),
			roleBinding("kube-system", "system::leader-locking-kube-scheduler", "system::leader-locking-kube-scheduler",
				userSubject(userScheduler), saSubject("kube-system", "kube-scheduler")),
			roleBinding("kube-system", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
				saSubject("kube-system", "bootstrap-signer")),
			roleBinding("kube-system", "system:controller:cloud-provider", "system:controller:cloud-provider",
				saSubject("kube-system", "cloud-provider")),
			roleBinding("kube-system", "system:controller:token-cleaner", "system:controller:token-cleaner",
				saSubject("kube-system", "token-cleaner")),
		},
	}
}
