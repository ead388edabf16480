package csiprovisioner

import (
	"context"
	"fmt"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// CloneFinalizer keeps a claim being cloned from until its clones are
// provisioned: upstream's, so either provisioner honours it.
const CloneFinalizer = "provisioner.storage.kubernetes.io/cloning-protection"

// claimKind is the dataSource kind of a clone.
const claimKind = "PersistentVolumeClaim"

// cloneSourceName is the claim the claim clones (same namespace), if its
// data source is a claim. The API server keeps dataSource and
// dataSourceRef in agreement when both are set; dataSourceRef alone may
// name another namespace, which is not a clone this provisioner makes.
func cloneSourceName(pvc *corev1.PersistentVolumeClaim) (string, bool) {
	if ds := pvc.Spec.DataSource; ds != nil {
		return ds.Name, ds.Kind == claimKind && (ds.APIGroup == nil || *ds.APIGroup == "")
	}
	if ref := pvc.Spec.DataSourceRef; ref != nil {
		sameNS := ref.Namespace == nil || *ref.Namespace == "" || *ref.Namespace == pvc.Namespace
		return ref.Name, ref.Kind == claimKind && (ref.APIGroup == nil || *ref.APIGroup == "") && sameNS
	}
	return "", false
}

// cloneSource checks that the claim can be cloned from its source claim,
// as external-provisioner does, and returns the source volume. A failed
// check is an error for the claim's event; the claim is retried, as the
// source may yet bind.
func (c *Controller) cloneSource(pvc *corev1.PersistentVolumeClaim, driver string) (*corev1.PersistentVolume, error) {
	name, _ := cloneSourceName(pvc)
	src, err := c.claims.PersistentVolumeClaims(pvc.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("source PVC %s/%s of the clone does not exist", pvc.Namespace, name)
	}
	if err != nil {
		return nil, err
	}
	if src.DeletionTimestamp != nil {
		return nil, fmt.Errorf("source PVC %s/%s of the clone is being deleted", pvc.Namespace, name)
	}
	if src.Status.Phase != corev1.ClaimBound || src.Spec.VolumeName == "" {
		return nil, fmt.Errorf("source PVC %s/%s of the clone is not bound", pvc.Namespace, name)
	}
	if want, got := volumematch.ClaimClass(pvc), volumematch.ClaimClass(src); want != got {
		return nil, fmt.Errorf("the source and destination PVCs of a clone must be in the same StorageClass: source %s is in %q, the new PVC in %q",
			name, got, want)
	}
	if want, got := volumematch.VolumeMode(pvc.Spec.VolumeMode), volumematch.VolumeMode(src.Spec.VolumeMode); want != got {
		return nil, fmt.Errorf("the source and destination PVCs of a clone must have the same volume mode: source %s is %s, the new PVC %s",
			name, got, want)
	}
	pv, err := c.volumes.Get(src.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("volume %s of source PVC %s/%s does not exist", src.Spec.VolumeName, pvc.Namespace, name)
	}
	if err != nil {
		return nil, err
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driver {
		return nil, fmt.Errorf("volume %s of source PVC %s/%s is not a volume of CSI driver %s", pv.Name, pvc.Namespace, name, driver)
	}
	have, ok := src.Status.Capacity[corev1.ResourceStorage]
	if !ok {
		have = pv.Spec.Capacity[corev1.ResourceStorage]
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if want.Cmp(have) < 0 {
		return nil, fmt.Errorf("the new PVC must request at least the size of its source PVC %s: requested %s, source is %s",
			name, want.String(), have.String())
	}
	return pv, nil
}

// cloneContent is CreateVolume's content source for a clone of pv.
func cloneContent(pv *corev1.PersistentVolume) *csipb.VolumeContentSource {
	return &csipb.VolumeContentSource{Type: &csipb.VolumeContentSource_Volume{
		Volume: &csipb.VolumeContentSource_VolumeSource{VolumeId: pv.Spec.CSI.VolumeHandle},
	}}
}

// protectSource puts CloneFinalizer on the claim's source before the
// clone is made, so the source cannot go while the driver copies it.
func (c *Controller) protectSource(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	name, _ := cloneSourceName(pvc)
	claims := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace)
	src, err := claims.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting source PVC %s: %w", name, err)
	}
	if src.DeletionTimestamp != nil {
		return fmt.Errorf("source PVC %s/%s of the clone is being deleted", pvc.Namespace, name)
	}
	if slices.Contains(src.Finalizers, CloneFinalizer) {
		return nil
	}
	src.Finalizers = append(src.Finalizers, CloneFinalizer)
	if _, err := claims.Update(ctx, src, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("adding finalizer %s to source PVC %s: %w", CloneFinalizer, name, err)
	}
	return nil
}

// syncProtection takes CloneFinalizer off a claim once no clone of it is
// in progress. Unlike upstream, which waits for the source's deletion,
// it does so as soon as the clones are provisioned; the claims' events
// (a clone provisioned, bound or deleted) bring it back here.
func (c *Controller) syncProtection(ctx context.Context, ns, name string) error {
	src, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !slices.Contains(src.Finalizers, CloneFinalizer) {
		return nil
	}
	return c.releaseSource(ctx, ns, name, "")
}

// releaseSource removes CloneFinalizer from claim ns/name unless a clone other than
// done (the UID of a claim just provisioned) is in progress: a claim of
// the namespace cloning it, pending, not deleted, whose volume does not
// exist yet. As upstream, a clone claim stuck pending for another reason
// keeps the source until it is deleted.
func (c *Controller) releaseSource(ctx context.Context, ns, name, done string) error {
	all, err := c.claims.PersistentVolumeClaims(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	for _, pvc := range all {
		if from, ok := cloneSourceName(pvc); !ok || from != name || string(pvc.UID) == done {
			continue
		}
		if pvc.Spec.VolumeName != "" || pvc.Status.Phase == corev1.ClaimBound || pvc.DeletionTimestamp != nil {
			continue
		}
		if _, err := c.volumes.Get(volumeName(pvc)); err == nil {
			continue
		}
		c.log.Debug("clone in progress, keeping finalizer", "source", ns+"/"+name, "clone", pvc.Name)
		return nil
	}
	claims := c.client.CoreV1().PersistentVolumeClaims(ns)
	fresh, err := claims.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !slices.Contains(fresh.Finalizers, CloneFinalizer) {
		return nil
	}
	fresh.Finalizers = slices.DeleteFunc(fresh.Finalizers, func(f string) bool { return f == CloneFinalizer })
	if _, err := claims.Update(ctx, fresh, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer %s from PVC %s/%s: %w", CloneFinalizer, ns, name, err)
	}
	c.log.Info("removed cloning protection", "claim", ns+"/"+name)
	return nil
}
