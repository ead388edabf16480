package localpath

import (
	"context"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	reasonProvisioningFailed    = "ProvisioningFailed"
	reasonProvisioningSucceeded = "ProvisioningSucceeded"
)

// syncClaim provisions a volume for a claim handed to this provisioner
// once the scheduler has chosen its node.
func (c *Controller) syncClaim(ctx context.Context, ns, name string) error {
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil || pvc.Annotations[annStorageProvisioner] != ProvisionerName {
		return nil
	}
	if pvc.Spec.StorageClassName == nil {
		return nil
	}
	sc, err := c.classes.Get(*pvc.Spec.StorageClassName)
	if apierrors.IsNotFound(err) {
		return nil // the binder reports the missing class
	}
	if err != nil {
		return err
	}
	if sc.Provisioner != ProvisionerName {
		return nil
	}
	if _, err := c.volumes.Get(volumeName(pvc)); err == nil {
		return nil // provisioned already; the binder binds it
	}
	if why := refusal(pvc, sc); why != "" {
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonProvisioningFailed, why)
		return nil
	}
	nodeName := pvc.Annotations[annSelectedNode]
	if nodeName == "" {
		return nil // the scheduler has not chosen yet
	}
	node, err := c.nodes.Get(nodeName)
	if apierrors.IsNotFound(err) {
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("failed to provision volume with StorageClass %q: selected node %q not found", sc.Name, nodeName))
		return fmt.Errorf("claim %s/%s: selected node %s not found", ns, name, nodeName)
	}
	if err != nil {
		return err
	}
	pv := newVolume(pvc, sc, node)
	if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("failed to provision volume with StorageClass %q: %v", sc.Name, err))
		return fmt.Errorf("creating volume for claim %s/%s: %w", ns, name, err)
	}
	c.recorder.Event(pvc, corev1.EventTypeNormal, reasonProvisioningSucceeded,
		fmt.Sprintf("Successfully provisioned volume %s", pv.Name))
	return nil
}

// refusal explains why a claim cannot get a local volume ("" when it can).
// A directory on one node serves one node: ReadWriteOnce and
// ReadWriteOncePod only, as rancher's local-path provisioner decides.
func refusal(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass) string {
	if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		return fmt.Sprintf("StorageClass %q must have volumeBindingMode WaitForFirstConsumer: %s volumes live on one node, which the scheduler must choose",
			sc.Name, ProvisionerName)
	}
	for _, m := range pvc.Spec.AccessModes {
		if m != corev1.ReadWriteOnce && m != corev1.ReadWriteOncePod {
			return fmt.Sprintf("access mode %s is not supported by %s (only ReadWriteOnce and ReadWriteOncePod: the volume lives on one node)",
				m, ProvisionerName)
		}
	}
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return fmt.Sprintf("volumeMode Block is not supported by %s", ProvisionerName)
	}
	if pvc.Spec.Selector != nil {
		return "claim Selector is not supported"
	}
	if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || q.Sign() <= 0 {
		return "claim must request a positive storage size"
	}
	return ""
}

// volumeName is the provisioned volume's name, as upstream's provisioners
// name theirs.
func volumeName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

// nodeDir is where the node keeps its local volumes.
func nodeDir(node *corev1.Node) string {
	if d := node.Annotations[DirAnnotation]; d != "" && path.IsAbs(d) {
		return path.Clean(d)
	}
	return DefaultDir
}

// newVolume is the hostPath volume for pvc on node: <dir>/<claim uid>,
// pinned to the node, bound to the claim (the binder completes it).
func newVolume(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, node *corev1.Node) *corev1.PersistentVolume {
	hostname := node.Labels[corev1.LabelHostname]
	if hostname == "" {
		hostname = node.Name
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        volumeName(pvc),
			Annotations: map[string]string{annProvisionedBy: ProvisionerName, nodeAnnotation: node.Name},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes: pvc.Spec.AccessModes,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: path.Join(nodeDir(node), string(pvc.UID)),
				Type: ptr.To(corev1.HostPathDirectoryOrCreate),
			}},
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              sc.Name,
			MountOptions:                  sc.MountOptions,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname},
				}}}},
			}},
		},
	}
}
