package kubelet

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// trustBundleSyncTimeout bounds the wait for the first list of
// ClusterTrustBundles, as upstream's kubelet.
const trustBundleSyncTimeout = 10 * time.Second

// trustBundles serves the clusterTrustBundle sources of projected volumes
// from an informer on ClusterTrustBundles (the Node authorizer lets a node
// list and watch them all). The informer starts on first use, as
// upstream's, so nodes whose pods never project a bundle never watch them;
// a change wakes the pods that project bundles.
type trustBundles struct {
	client  kubernetes.Interface
	stop    <-chan struct{} // the kubelet's end
	changed func()

	mu      sync.Mutex
	lister  certlisters.ClusterTrustBundleLister
	synced  cache.InformerSynced
	started bool
}

func newTrustBundles(stop <-chan struct{}, client kubernetes.Interface, changed func()) *trustBundles {
	return &trustBundles{client: client, stop: stop, changed: changed}
}

// ensureStarted starts the informer once and waits for its first list.
func (t *trustBundles) ensureStarted(ctx context.Context) (certlisters.ClusterTrustBundleLister, error) {
	t.mu.Lock()
	if !t.started {
		factory := informers.NewSharedInformerFactory(t.client, 0)
		inf := factory.Certificates().V1().ClusterTrustBundles()
		notify := func(any) { t.changed() }
		if _, err := inf.Informer().AddEventHandler(informerutil.OnAnyChange(notify)); err != nil {
			t.mu.Unlock()
			return nil, fmt.Errorf("ClusterTrustBundle informer: %w", err)
		}
		t.lister, t.synced = inf.Lister(), inf.Informer().HasSynced
		// The informer lives as long as the kubelet, not as the pod sync
		// that happened to start it.
		factory.Start(t.stop)
		t.started = true
	}
	lister, synced := t.lister, t.synced
	t.mu.Unlock()
	if !synced() {
		wctx, cancel := context.WithTimeout(ctx, trustBundleSyncTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), synced) {
			return nil, errors.New("ClusterTrustBundle informer has not yet synced")
		}
	}
	return lister, nil
}

// anchors returns the deduplicated PEM trust anchors a projection selects:
// one bundle by name, or every bundle of a signer matching the label
// selector (nil matches nothing, empty everything). Nothing found is an
// error unless the projection is optional, which then yields an empty file.
func (t *trustBundles) anchors(ctx context.Context, src *v1.ClusterTrustBundleProjection) ([]byte, error) {
	optional := src.Optional != nil && *src.Optional
	lister, err := t.ensureStarted(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case src.Name != nil:
		ctb, err := lister.Get(*src.Name)
		if apierrors.IsNotFound(err) && optional {
			return []byte{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("while getting ClusterTrustBundle: %w", err)
		}
		return normalizeTrustAnchors([]*certificatesv1.ClusterTrustBundle{ctb}), nil
	case src.SignerName != nil:
		sel, err := metav1.LabelSelectorAsSelector(src.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("while parsing label selector: %w", err)
		}
		all, err := lister.List(sel)
		if err != nil {
			return nil, err
		}
		var matched []*certificatesv1.ClusterTrustBundle
		for _, ctb := range all {
			if ctb.Spec.SignerName == *src.SignerName {
				matched = append(matched, ctb)
			}
		}
		if len(matched) == 0 {
			if optional {
				return []byte{}, nil
			}
			return nil, errors.New("combination of signerName and labelSelector matched zero ClusterTrustBundles")
		}
		return normalizeTrustAnchors(matched), nil
	}
	return nil, errors.New("ClusterTrustBundle projection requires either name or signerName to be set")
}

// normalizeTrustAnchors re-encodes the certificates of the bundles as PEM,
// each once, in a stable order (by DER bytes) so rewriting the volume at
// every sync changes nothing until a bundle does.
func normalizeTrustAnchors(ctbs []*certificatesv1.ClusterTrustBundle) []byte {
	var ders []string
	for _, ctb := range ctbs {
		rest := []byte(ctb.Spec.TrustBundle)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			ders = append(ders, string(b.Bytes))
		}
	}
	slices.Sort(ders)
	ders = slices.Compact(ders)
	out := []byte{}
	for _, der := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte(der)})...)
	}
	return out
}

// trustBundleFiles projects one clusterTrustBundle source.
func (k *Kubelet) trustBundleFiles(ctx context.Context, src *v1.ClusterTrustBundleProjection, defMode *int32) (map[string]volumeFile, error) {
	if err := safeRelPath(src.Path); err != nil {
		return nil, err
	}
	if k.trustBundles == nil {
		return nil, errors.New("ClusterTrustBundle projection is not available before the kubelet runs")
	}
	data, err := k.trustBundles.anchors(ctx, src)
	if err != nil {
		return nil, err
	}
	return map[string]volumeFile{filepath.Clean(src.Path): {data, fileMode(nil, defMode)}}, nil
}

// projectsTrustBundles reports whether a pod has a clusterTrustBundle
// projected source, whose content follows ClusterTrustBundle changes.
func projectsTrustBundles(pod *v1.Pod) bool {
	for _, vol := range pod.Spec.Volumes {
		if vol.Projected == nil {
			continue
		}
		for _, s := range vol.Projected.Sources {
			if s.ClusterTrustBundle != nil {
				return true
			}
		}
	}
	return false
}

// wakeTrustBundlePods wakes the workers of pods projecting bundles.
func (k *Kubelet) wakeTrustBundlePods() {
	k.workersMu.Lock()
	defer k.workersMu.Unlock()
	for _, w := range k.workers {
		if p := w.currentPod(); p != nil && projectsTrustBundles(p) {
			w.notify()
		}
	}
}
