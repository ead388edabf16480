package kubelet

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var everything = labels.Everything()

// gcPeriod is how often dead containers and unused images are collected,
// upstream's cadence.
const (
	containerGCPeriod = time.Minute
	imageGCPeriod     = 5 * time.Minute
)

// runGC removes dead containers beyond the per-container and total limits
// and, under disk pressure, images no container uses.
func (k *Kubelet) runGC(ctx context.Context) {
	lastUsed := map[string]time.Time{}
	t := k.clock.NewTicker(containerGCPeriod)
	defer t.Stop()
	lastImageGC := k.clock.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if err := k.collectContainers(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("container garbage collection", "err", err)
		}
		if k.clock.Since(lastImageGC) >= imageGCPeriod {
			lastImageGC = k.clock.Now()
			if err := k.collectImages(ctx, lastUsed); err != nil && ctx.Err() == nil {
				k.log.Warn("image garbage collection", "err", err)
			}
		}
	}
}

// collectContainers keeps the newest ContainerGCMax exited instances of each
// container (older than MinContainerAge) and removes the rest, and removes
// stopped sandboxes that are not a pod's newest.
func (k *Kubelet) collectContainers(ctx context.Context) error {
	cs, err := k.runtime.runtime.ListContainers(ctx, nil)
	if err != nil {
		return err
	}
	groups := map[string][]*runtimeapi.Container{}
	for _, c := range cs {
		if c.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			continue
		}
		key := c.Labels[labelPodUID] + "/" + c.Metadata.GetName()
		groups[key] = append(groups[key], c)
	}
	var evictable []*runtimeapi.Container
	for _, g := range groups {
		sort.Slice(g, func(i, j int) bool { return g[i].CreatedAt > g[j].CreatedAt })
		if len(g) > k.cfg.ContainerGCMax {
			evictable = append(evictable, g[k.cfg.ContainerGCMax:]...)
		}
	}
	remaining := 0
	for _, g := range groups {
		remaining += len(g)
	}
	if k.cfg.MaxTotalDead >= 0 && remaining-len(evictable) > k.cfg.MaxTotalDead {
		// Over the total: the oldest of the kept ones go too.
		var kept []*runtimeapi.Container
		for _, g := range groups {
			if len(g) > k.cfg.ContainerGCMax {
				g = g[:k.cfg.ContainerGCMax]
			}
			kept = append(kept, g...)
		}
		sort.Slice(kept, func(i, j int) bool { return kept[i].CreatedAt < kept[j].CreatedAt })
		evictable = append(evictable, kept[:remaining-len(evictable)-k.cfg.MaxTotalDead]...)
	}
	for _, c := range evictable {
		// Zero means no minimum, whatever the runtime's and k.clock's
		// readings of "now" (a fake runtime's may run a little ahead).
		if k.cfg.MinContainerAge > 0 && k.clock.Since(time.Unix(0, c.CreatedAt)) < k.cfg.MinContainerAge {
			continue
		}
		k.removeContainer(ctx, c.Id)
	}

	sbs, err := k.runtime.runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	byPod := map[string][]*runtimeapi.PodSandbox{}
	for _, s := range sbs {
		byPod[s.Labels[labelPodUID]] = append(byPod[s.Labels[labelPodUID]], s)
	}
	inUse := map[string]bool{}
	for _, c := range cs {
		inUse[c.PodSandboxId] = true
	}
	for _, list := range byPod {
		sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt > list[j].CreatedAt })
		for _, s := range list[1:] {
			if s.State != runtimeapi.PodSandboxState_SANDBOX_READY && !inUse[s.Id] {
				if err := k.runtime.runtime.RemovePodSandbox(ctx, s.Id); err != nil {
					k.log.Warn("remove old sandbox", "id", s.Id, "err", err)
				}
			}
		}
	}
	return nil
}

// collectImages frees disk when usage passes ImageGCHigh percent, removing
// images no container uses, least recently used first, down to ImageGCLow.
func (k *Kubelet) collectImages(ctx context.Context, lastUsed map[string]time.Time) error {
	imgs, err := k.runtime.images.ListImages(ctx, nil)
	if err != nil {
		return err
	}
	cs, err := k.runtime.runtime.ListContainers(ctx, nil)
	if err != nil {
		return err
	}
	now := k.clock.Now()
	for _, c := range cs {
		lastUsed[c.ImageRef] = now
	}
	pinned := k.pinnedImageIDs(ctx)
	var unused []*runtimeapi.Image
	for _, img := range imgs {
		if _, seen := lastUsed[img.Id]; !seen {
			lastUsed[img.Id] = now // first seen: count from now
		}
		if lastUsed[img.Id] != now && !img.Pinned && !pinned[img.Id] {
			unused = append(unused, img)
		}
	}
	usage, total, err := k.imageFsUsage(ctx)
	if err != nil || total == 0 || usage*100/total < uint64(k.cfg.ImageGCHigh) {
		return err
	}
	target := total * uint64(k.cfg.ImageGCLow) / 100
	sort.Slice(unused, func(i, j int) bool { return lastUsed[unused[i].Id].Before(lastUsed[unused[j].Id]) })
	for _, img := range unused {
		if usage <= target {
			break
		}
		if err := k.runtime.images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: img.Id}); err != nil {
			k.log.Warn("remove unused image", "image", img.Id, "err", err)
			continue
		}
		k.log.Info("removed unused image", "image", img.RepoTags, "size", img.Size)
		delete(lastUsed, img.Id)
		usage -= min(usage, img.Size)
	}
	return nil
}

// pinnedImageIDs are the IDs of the images the collector keeps whatever the
// disk usage, besides those the runtime reports pinned (containerd 1.6 pins
// none): the sandbox image, which every pod starts with, as upstream's
// kubelet keeps it, and cfg.PinnedImages. A reference the runtime does not
// know is skipped.
func (k *Kubelet) pinnedImageIDs(ctx context.Context) map[string]bool {
	refs := k.cfg.PinnedImages
	if sandbox := k.sandboxImage(ctx); sandbox != "" {
		refs = append(slices.Clip(refs), sandbox)
	}
	ids := make(map[string]bool, len(refs))
	for _, ref := range refs {
		resp, err := k.runtime.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
		if err == nil && resp.GetImage() != nil {
			ids[resp.GetImage().GetId()] = true
		}
	}
	return ids
}

// sandboxImage is the pause image the runtime starts pods with, from its
// verbose status (containerd reports its CRI configuration there), or ""
// when the runtime does not say.
func (k *Kubelet) sandboxImage(ctx context.Context) string {
	resp, err := k.runtime.runtime.Status(ctx, true)
	if err != nil {
		return ""
	}
	var cfg struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if json.Unmarshal([]byte(resp.GetInfo()["config"]), &cfg) != nil {
		return ""
	}
	return cfg.SandboxImage
}

// imageFsUsage is the used and total bytes of the filesystem holding images.
func (k *Kubelet) imageFsUsage(ctx context.Context) (used, total uint64, err error) {
	info, err := k.runtime.images.ImageFsInfo(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, fs := range info.ImageFilesystems {
		if used, total, err := k.fsUsage(fs.GetFsId().GetMountpoint()); err == nil {
			return used, total, nil
		}
	}
	return 0, 0, nil
}

// statfsUsage is the used and total bytes of the filesystem at path, as
// upstream counts them: what is not available to unprivileged users is used.
func statfsUsage(path string) (used, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	total = st.Blocks * uint64(st.Bsize)
	return total - st.Bavail*uint64(st.Bsize), total, nil
}
