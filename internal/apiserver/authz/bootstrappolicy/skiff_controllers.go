package bootstrappolicy

import rbacv1 "k8s.io/api/rbac/v1"

// skiffControllerRoles are the roles of Skiff's controllers that have no
// upstream counterpart; like upstream's, system:controller:<name> is bound
// to the ServiceAccount kube-system/<name> the controller runs as.
func skiffControllerRoles() []rbacv1.ClusterRole {
	return []rbacv1.ClusterRole{
		// servicelb publishes every node's addresses as the load-balancer
		// ingress of LoadBalancer Services and built-in-class Ingresses.
		controllerRole("skiff-servicelb",
			newRule(read...).groups(legacyGroup).res("services"),
			newRule("patch", "update").groups(legacyGroup).res("services/status"),
			newRule(read...).groups(networkingGroup).res("ingresses"),
			newRule("patch", "update").groups(networkingGroup).res("ingresses/status"),
			newRule("list", "watch").groups(legacyGroup).res("nodes"),
			eventsRule(),
		),
		// The local-path provisioner keeps the default StorageClass, makes
		// and deletes the volumes of its classes, and runs helper pods that
		// remove a deleted volume's directory on its node.
		controllerRole("skiff-local-path-provisioner",
			newRule("create", "delete", "get", "list", "watch").groups(legacyGroup).res("persistentvolumes"),
			newRule(read...).groups(legacyGroup).res("persistentvolumeclaims"),
			newRule("create", "get", "list", "watch").groups(storageGroup).res("storageclasses"),
			newRule(read...).groups(legacyGroup).res("nodes"),
			newRule("create", "delete", "get", "list", "watch").groups(legacyGroup).res("pods"),
			eventsRule(),
		),
		// The built-in CSI provisioner creates and deletes the volumes of
		// CSI drivers' classes; it reaches the drivers' controller
		// services through the kubelets (nodes/proxy). Its capacity
		// tracking (csi-storage-capacity) publishes CSIStorageCapacities.
		controllerRole("skiff-csi-provisioner",
			newRule("create", "delete", "get", "list", "watch", "update").groups(legacyGroup).res("persistentvolumes"),
			// update: a clone's source claim carries the cloning-protection
			// finalizer while it is copied, as upstream's RBAC allows.
			newRule("get", "list", "watch", "update").groups(legacyGroup).res("persistentvolumeclaims"),
			newRule(read...).groups(storageGroup).res("storageclasses", "csinodes", "csidrivers"),
			newRule(read...).groups(legacyGroup).res("nodes"),
			newRule("create").groups(legacyGroup).res("nodes/proxy"),
			// The classes' provisioner secrets, for CreateVolume and DeleteVolume.
			newRule("get").groups(legacyGroup).res("secrets"),
			newRule("create", "delete", "get", "list", "watch", "update").groups(storageGroup).res("csistoragecapacities"),
			eventsRule(),
		),
	}
}
