package attachdetach

import (
	"crypto/sha256"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// csiPluginName prefixes the unique names of CSI volumes, which the kubelet
// reports in node.status.volumesInUse and this controller in
// node.status.volumesAttached.
const csiPluginName = "kubernetes.io/csi"

// AttachmentName is the name of the VolumeAttachment of a volume on a
// node: "csi-" and the hex SHA-256 of handle, driver and node, as
// upstream's CSI attacher names it, so the kubelet (and anything else
// following upstream) finds it without a lookup.
func AttachmentName(handle, driver, node string) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(handle+driver+node)))
}

// isAttachmentName reports whether name has AttachmentName's form. Only
// such attachments are this controller's to delete: as upstream's, it
// leaves alone those other clients create under names of their own.
func isAttachmentName(name string) bool {
	hash, ok := strings.CutPrefix(name, "csi-")
	if !ok || len(hash) != 2*sha256.Size {
		return false
	}
	for _, r := range hash {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// UniqueVolumeName is a CSI volume's name in node status:
// "kubernetes.io/csi/<driver>^<handle>".
func UniqueVolumeName(driver, handle string) corev1.UniqueVolumeName {
	return corev1.UniqueVolumeName(csiPluginName + "/" + driver + "^" + handle)
}

// parseUniqueVolumeName splits a unique CSI volume name into driver and
// handle; ok is false for other plugins' names.
func parseUniqueVolumeName(name corev1.UniqueVolumeName) (driver, handle string, ok bool) {
	rest, ok := strings.CutPrefix(string(name), csiPluginName+"/")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "^")
}
