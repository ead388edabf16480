package localpath

import (
	"context"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	reasonVolumeFailedDelete = "VolumeFailedDelete"
	// helperMount is where a helper pod sees the node's volume directory.
	helperMount = "/data"
)

// syncVolume deletes a Released volume of reclaim policy Delete: a helper
// pod on the volume's node removes the directory, then the volume goes.
// A missing node or a failed helper leaves volume and data alone, with an
// event, and the deletion is retried with backoff.
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return c.deleteHelper(ctx, name)
	}
	if err != nil {
		return err
	}
	if pv.DeletionTimestamp != nil {
		return c.deleteHelper(ctx, name)
	}
	if pv.Annotations[annProvisionedBy] != ProvisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	parent, base, err := splitVolumePath(pv)
	if err != nil {
		c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
		return nil
	}
	nodeName := volumeNode(pv)
	if _, err := c.nodes.Get(nodeName); err != nil {
		if apierrors.IsNotFound(err) {
			c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, fmt.Sprintf(
				"node %q is gone: the volume's data there is left untouched; delete the PersistentVolume by hand once you have decided", nodeName))
			return fmt.Errorf("volume %s: node %s not found", name, nodeName)
		}
		return err
	}
	helper, err := c.pods.Pods(HelperNamespace).Get(helperName(name))
	switch {
	case apierrors.IsNotFound(err):
		// The cache may still show a volume this loop just deleted: ask
		// the server before starting another helper.
		live, err := c.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && (live.DeletionTimestamp != nil || live.UID != pv.UID)) {
			return nil
		}
		if err != nil {
			return err
		}
		_, err = c.client.CoreV1().Pods(HelperNamespace).Create(ctx, helperPod(pv, nodeName, parent, base), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating helper pod for volume %s: %w", name, err)
		}
		return nil // its progress wakes us
	case err != nil:
		return err
	}
	if helper.Labels[helperLabel] != name || helper.DeletionTimestamp != nil {
		return fmt.Errorf("helper pod %s/%s is not ready for volume %s yet", HelperNamespace, helper.Name, name)
	}
	switch helper.Status.Phase {
	case corev1.PodSucceeded:
		if err := c.deleteHelper(ctx, name); err != nil {
			return err
		}
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting volume %s: %w", name, err)
		}
		c.log.Info("deleted volume and its data", "volume", name, "node", nodeName)
		return nil
	case corev1.PodFailed:
		c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, fmt.Sprintf(
			"helper pod %s/%s failed to remove %s on node %q: %s", HelperNamespace, helper.Name, path.Join(parent, base), nodeName, helper.Status.Message))
		if err := c.deleteHelper(ctx, name); err != nil {
			return err
		}
		return fmt.Errorf("volume %s: helper pod failed", name)
	}
	return nil // still running
}

// volumeNode is the node the volume lives on.
func volumeNode(pv *corev1.PersistentVolume) string {
	if n := pv.Annotations[nodeAnnotation]; n != "" {
		return n
	}
	if a := pv.Spec.NodeAffinity; a != nil && a.Required != nil {
		for _, t := range a.Required.NodeSelectorTerms {
			for _, r := range t.MatchExpressions {
				if r.Key == corev1.LabelHostname && len(r.Values) == 1 {
					return r.Values[0]
				}
			}
		}
	}
	return ""
}

// splitVolumePath returns the directory holding the volume and the
// volume's own directory name, refusing anything but a plain
// <absolute dir>/<name> so that a helper never removes more than a volume.
func splitVolumePath(pv *corev1.PersistentVolume) (parent, base string, err error) {
	if pv.Spec.HostPath == nil {
		return "", "", fmt.Errorf("volume %s is not a hostPath volume", pv.Name)
	}
	p := pv.Spec.HostPath.Path
	if !path.IsAbs(p) || path.Clean(p) != p {
		return "", "", fmt.Errorf("volume %s: refusing to delete unclean path %q", pv.Name, p)
	}
	parent, base = path.Dir(p), path.Base(p)
	if parent == "/" || base == "." || base == ".." || base == "/" {
		return "", "", fmt.Errorf("volume %s: refusing to delete %q", pv.Name, p)
	}
	return parent, base, nil
}

func helperName(volume string) string { return "delete-" + volume }

// helperPod removes one volume directory on its node.
func helperPod(pv *corev1.PersistentVolume, node, parent, base string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: helperName(pv.Name), Namespace: HelperNamespace,
			Labels: map[string]string{helperLabel: pv.Name},
		},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			RestartPolicy:                corev1.RestartPolicyNever,
			Tolerations:                  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name:            "delete",
				Image:           HelperImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"rm", "-rf", path.Join(helperMount, base)},
				VolumeMounts:    []corev1.VolumeMount{{Name: "dir", MountPath: helperMount}},
			}},
			Volumes: []corev1.Volume{{Name: "dir", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: parent, Type: ptr.To(corev1.HostPathDirectoryOrCreate),
			}}}},
		},
	}
}

// deleteHelper removes a volume's helper pod, if any.
func (c *Controller) deleteHelper(ctx context.Context, volume string) error {
	err := c.client.CoreV1().Pods(HelperNamespace).Delete(ctx, helperName(volume), metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting helper pod for volume %s: %w", volume, err)
	}
	return nil
}
