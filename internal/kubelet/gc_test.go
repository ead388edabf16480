package kubelet

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/internal/kubelet/fakeruntime"
)

// A full disk frees unused images but never the sandbox image, which
// every pod needs to start, nor the pinned ones (imported from archives,
// with no registry to pull them back).
func TestImageGCKeepsSandboxAndPinnedImages(t *testing.T) {
	h := newHarness(t)
	const sandbox, imported, stale = "registry.k8s.io/pause:3.9", "example.test/imported:1", "example.test/stale:1"
	for _, ref := range []string{sandbox, imported, stale} {
		h.rt.AddImage(ref)
	}
	h.rt.SandboxImage = sandbox
	h.k.cfg.PinnedImages = []string{imported, "example.test/not-present:1"}
	h.k.fsUsage = func(path string) (used, total uint64, err error) {
		if path != fakeruntime.ImageFsMountpoint {
			return 0, 0, errors.New("unexpected path " + path)
		}
		return 90_000, 100_000, nil // 90 % used: past the 85 % mark
	}
	ctx := context.Background()
	lastUsed := map[string]time.Time{}
	// Images are first seen unused now; a later round may remove them.
	for range 2 {
		if err := h.k.collectImages(ctx, lastUsed); err != nil {
			t.Fatal(err)
		}
		h.clock.Step(imageGCPeriod)
	}
	for ref, want := range map[string]bool{sandbox: true, imported: true, stale: false, "busybox": false} {
		if _, kept := h.rt.Images[ref]; kept != want {
			t.Errorf("image %s kept = %v, want %v", ref, kept, want)
		}
	}
}
