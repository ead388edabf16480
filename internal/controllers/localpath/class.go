package localpath

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// DefaultClass is the StorageClass created when none named local-path
// exists: the cluster's default, waiting for the first consumer (a local
// volume needs its node first), deleting data with the claim.
func DefaultClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{annDefaultClass: "true"}},
		Provisioner:       ProvisionerName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// ensureClass creates the class if absent. An existing one is the
// user's (possibly edited, or no longer default) and is never rewritten.
func (c *Controller) ensureClass(ctx context.Context) error {
	if _, err := c.classes.Get(ClassName); err == nil {
		return nil
	}
	_, err := c.client.StorageV1().StorageClasses().Create(ctx, DefaultClass(), metav1.CreateOptions{})
	if err == nil {
		c.log.Info("created the default StorageClass", "storageclass", ClassName)
	}
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ensureClassUntilDone retries ensureClass with backoff (the server may be
// starting) until it succeeds or ctx ends, without holding up the rest.
func (c *Controller) ensureClassUntilDone(ctx context.Context) {
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Cap: 30 * time.Second, Steps: 1 << 30}
	_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		if err := c.ensureClass(ctx); err != nil {
			c.log.Warn("ensuring the default StorageClass", "err", err)
			return false, nil
		}
		return true, nil
	})
}
