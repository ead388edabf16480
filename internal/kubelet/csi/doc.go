// Package csi is the node side of the Container Storage Interface in
// Skiff's kubelet, following upstream's kubelet:
//
//   - Plugin registration. Driver pods (their node-driver-registrar
//     sidecar) put a registration socket in <DataDir>/plugins_registry.
//     The directory is polled every second; each new socket is asked for
//     its PluginInfo (k8s.io/kubelet pluginregistration/v1). A "CSIPlugin"
//     is recorded (driver name → CSI endpoint), its NodeGetInfo goes into
//     the node's CSINode object (and its topology labels onto the Node),
//     and the plugin is told the outcome. A removed socket deregisters the
//     driver and drops its CSINode entry.
//   - Volumes. A claim bound to a CSI PersistentVolume is, when the
//     CSIDriver requires attachment (the default), published only once its
//     VolumeAttachment reports attached; it is staged once per node at
//     <DataDir>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount
//     when the driver can stage, then published into
//     <pods>/<uid>/volumes/kubernetes.io~csi/<volume>/mount. Inline (ephemeral)
//     csi volumes are only published. A vol_data.json beside each mount
//     records what teardown, which knows only the pod UID, must undo.
//   - Raw block volumes (block.go). A claim's CSI PersistentVolume of
//     volumeMode Block, used through volumeDevices, is staged (Block
//     capability) at the directory
//     <DataDir>/plugins/kubernetes.io/csi/volumeDevices/staging/<pv> and
//     published at the file .../volumeDevices/publish/<pv>/<pod uid>, which
//     the driver makes a device node (a bind mount of one) and the kubelet
//     hands to containers as a CRI device. Its record stays with the pod's
//     CSI volumes, so teardown unpublishes it like a mount, and unstages it
//     after the last pod.
//   - fsGroup. A driver with the VOLUME_MOUNT_GROUP node capability gets
//     the pod's fsGroup as the mount's VolumeMountGroup and applies it
//     itself. Otherwise the kubelet gives the published tree to the
//     fsGroup (ownership.go) as the CSIDriver's fsGroupPolicy says: File
//     always, the default ReadWriteOnceWithFSType only for a writable
//     volume with an fsType and ReadWriteOnce(Pod), None never.
//   - Tokens and republishing. For a CSIDriver with tokenRequests the
//     kubelet gets a ServiceAccount token bound to the pod per audience
//     (through Config.Tokens, the kubelet's token cache) and passes them in
//     the NodePublishVolume volume context as
//     csi.storage.k8s.io/serviceAccount.tokens; a token that cannot be had
//     fails the publish. A driver with requiresRepublish gets
//     NodePublishVolume again, with fresh tokens, on the pod's syncs at most
//     every RepublishInterval; a failed republish is logged and reported as
//     an event, and leaves the volume mounted.
//
// With Skiff the kubelet's DataDir is, for example,
// /var/lib/skiff/agent/kubelet (not /var/lib/kubelet). A driver's DaemonSet
// must therefore mount the hostPaths <DataDir>/plugins_registry (for the
// registrar), <DataDir>/plugins/<driver> (for its CSI socket) and, with
// mountPropagation Bidirectional, <DataDir>/pods and <DataDir>/plugins (where
// it mounts), and pass the registrar
// --kubelet-registration-path=<DataDir>/plugins/<driver>/csi.sock.
package csi
