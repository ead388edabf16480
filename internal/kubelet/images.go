package kubelet

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pullTimeout bounds one image pull; registries are often unreachable here.
const pullTimeout = 2 * time.Minute

// imageUser is the user an image runs as, for runAsNonRoot checks.
type imageUser struct {
	uid      *int64
	username string
}

func (u *imageUser) root() bool {
	if u.uid != nil {
		return *u.uid == 0
	}
	return u.username == "" || u.username == "root"
}

// ensureImage makes the container's image available per imagePullPolicy and
// returns its ID. A failed pull when the image exists locally falls back to
// the local copy with a warning: air-gapped nodes import their images, and
// `:latest` defaults to Always.
func (k *Kubelet) ensureImage(ctx context.Context, w *podWorker, pod *v1.Pod, c *v1.Container, runtimeHandler string) (string, *imageUser, error) {
	spec := &runtimeapi.ImageSpec{Image: c.Image, RuntimeHandler: runtimeHandler}
	st, err := k.runtime.images.ImageStatus(ctx, spec, false)
	if err != nil {
		return "", nil, fmt.Errorf("image status %s: %w", c.Image, err)
	}
	local := st.GetImage()
	key := backoffKey(pod.UID, "pull/"+c.Name)
	switch c.ImagePullPolicy {
	case v1.PullNever:
		if local == nil {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			w.waiting[c.Name] = waitingReason{"ErrImageNeverPull", msg}
			k.recorder.Event(pod, v1.EventTypeWarning, "ErrImageNeverPull", msg)
			return "", nil, fmt.Errorf("%s", msg)
		}
		return local.Id, userOf(local), nil
	case v1.PullIfNotPresent:
		if local != nil {
			return local.Id, userOf(local), nil
		}
	}
	if k.backoff.sinceLast(key) > 0 {
		w.waiting[c.Name] = waitingReason{"ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", c.Image)}
		return "", nil, fmt.Errorf("image pull backing off")
	}
	k.recorder.Eventf(pod, v1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	start := k.clock.Now()
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	_, perr := k.runtime.images.PullImage(pctx, spec, nil, nil)
	cancel()
	if perr != nil {
		if local != nil {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "Pulling", "Could not pull image %q (%v); using the local copy", c.Image, perr)
			return local.Id, userOf(local), nil
		}
		k.backoff.next(key, k.clock.Now())
		msg := fmt.Sprintf("Failed to pull image %q: %v (no registry reachable? import it with `skiff images import`)", c.Image, perr)
		w.waiting[c.Name] = waitingReason{"ErrImagePull", msg}
		k.recorder.Event(pod, v1.EventTypeWarning, "Failed", msg)
		return "", nil, fmt.Errorf("%s", msg)
	}
	k.backoff.reset(key)
	st, err = k.runtime.images.ImageStatus(ctx, spec, false)
	if err != nil || st.GetImage() == nil {
		return "", nil, fmt.Errorf("image %s missing after pull: %v", c.Image, err)
	}
	k.recorder.Eventf(pod, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, k.clock.Since(start).Round(time.Millisecond))
	return st.GetImage().Id, userOf(st.GetImage()), nil
}

func userOf(img *runtimeapi.Image) *imageUser {
	u := &imageUser{username: img.Username}
	if img.Uid != nil {
		v := img.Uid.Value
		u.uid = &v
	}
	return u
}
