package scheduler

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/informerutil"
	"github.com/skiff-dev/skiff/internal/volumematch"
)

// Annotations of upstream's volume binding protocol, shared with the PV
// controller and provisioners.
const (
	annSelectedNode       = "volume.kubernetes.io/selected-node"
	annBindCompleted      = "pv.kubernetes.io/bind-completed"
	annBoundByController  = "pv.kubernetes.io/bound-by-controller"
	notSupportedProvision = "kubernetes.io/no-provisioner"
	// defaultBindTimeout is upstream's bindTimeoutSeconds: how long PreBind
	// waits for the PV controller and provisioner to bind every claim.
	defaultBindTimeout = 600 * time.Second
	pvClassIndex       = "class"
)

// volumeBinder is the scheduler's view of storage: informer listers for
// claims, volumes, classes and CSI objects, plus an overlay of objects the
// scheduler has assumed (a PV reserved for a claim, a claim given a
// selected node) until the informer shows the API caught up. Parallel
// pods therefore never take the same PV.
type volumeBinder struct {
	client     kubernetes.Interface
	log        *slog.Logger
	pvcs       listerscorev1.PersistentVolumeClaimLister
	pvs        listerscorev1.PersistentVolumeLister
	pvIndex    toolscache.Indexer
	classes    listersstoragev1.StorageClassLister
	csiNodes   listersstoragev1.CSINodeLister
	csiDrivers listersstoragev1.CSIDriverLister
	capacities listersstoragev1.CSIStorageCapacityLister
	pods       listerscorev1.PodLister

	bindTimeout time.Duration
	clock       clock.WithTicker // for the bind timeout and recheck ticker

	mu         sync.Mutex
	assumedPVs map[string]*assumed[*corev1.PersistentVolume]
	assumedPVC map[string]*assumed[*corev1.PersistentVolumeClaim] // by "namespace/name"
	changed    chan struct{}                                      // closed and replaced on every claim or volume event
}

// assumed is an object the scheduler expects the API to hold soon.
// written says whether this scheduler already wrote it.
type assumed[T any] struct {
	obj     T
	written bool
}

// newVolumeBinder registers the storage informers on factory. onChange is
// called with every storage event so the caller can wake waiting pods.
func newVolumeBinder(client kubernetes.Interface, log *slog.Logger, clk clock.WithTicker, factory informers.SharedInformerFactory, pods listerscorev1.PodLister, onChange func(claim *corev1.PersistentVolumeClaim)) *volumeBinder {
	core, storage := factory.Core().V1(), factory.Storage().V1()
	pvInf := core.PersistentVolumes().Informer()
	_ = pvInf.AddIndexers(toolscache.Indexers{pvClassIndex: func(o any) ([]string, error) {
		if pv, ok := o.(*corev1.PersistentVolume); ok {
			return []string{volumematch.VolumeClass(pv)}, nil
		}
		return nil, nil
	}})
	b := &volumeBinder{
		client:      client,
		log:         log,
		clock:       clk,
		pvcs:        core.PersistentVolumeClaims().Lister(),
		pvs:         core.PersistentVolumes().Lister(),
		pvIndex:     pvInf.GetIndexer(),
		classes:     storage.StorageClasses().Lister(),
		csiNodes:    storage.CSINodes().Lister(),
		csiDrivers:  storage.CSIDrivers().Lister(),
		capacities:  storage.CSIStorageCapacities().Lister(),
		pods:        pods,
		bindTimeout: defaultBindTimeout,
		assumedPVs:  map[string]*assumed[*corev1.PersistentVolume]{},
		assumedPVC:  map[string]*assumed[*corev1.PersistentVolumeClaim]{},
		changed:     make(chan struct{}),
	}
	handler := func(f func(o any)) toolscache.ResourceEventHandlerFuncs {
		return toolscache.ResourceEventHandlerFuncs{
			AddFunc:    f,
			UpdateFunc: func(_, o any) { f(o) },
			DeleteFunc: func(o any) {
				o = informerutil.Unwrap(o)
				f(o)
			},
		}
	}
	_, _ = core.PersistentVolumeClaims().Informer().AddEventHandler(handler(func(o any) {
		pvc, ok := o.(*corev1.PersistentVolumeClaim)
		if !ok {
			return
		}
		b.mu.Lock()
		if a := b.assumedPVC[claimKey(pvc.Namespace, pvc.Name)]; a != nil && !olderThan(pvc.ResourceVersion, a.obj.ResourceVersion) {
			delete(b.assumedPVC, claimKey(pvc.Namespace, pvc.Name))
		}
		b.mu.Unlock()
		b.notify()
		onChange(pvc)
	}))
	_, _ = pvInf.AddEventHandler(handler(func(o any) {
		pv, ok := o.(*corev1.PersistentVolume)
		if !ok {
			return
		}
		b.mu.Lock()
		if a := b.assumedPVs[pv.Name]; a != nil && !olderThan(pv.ResourceVersion, a.obj.ResourceVersion) {
			delete(b.assumedPVs, pv.Name)
		}
		b.mu.Unlock()
		b.notify()
		onChange(nil)
	}))
	for _, inf := range []toolscache.SharedIndexInformer{
		storage.StorageClasses().Informer(), storage.CSINodes().Informer(),
		storage.CSIDrivers().Informer(), storage.CSIStorageCapacities().Informer(),
	} {
		_, _ = inf.AddEventHandler(handler(func(any) { onChange(nil) }))
	}
	return b
}

// notify wakes every PreBind waiting for claims to bind.
func (b *volumeBinder) notify() {
	b.mu.Lock()
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// watch returns a channel closed at the next claim or volume event.
func (b *volumeBinder) watch() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

func claimKey(namespace, name string) string { return namespace + "/" + name }

// olderThan compares resourceVersions, which are etcd revisions here (and
// upstream); non-numeric ones are never considered older.
func olderThan(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

// claim returns the newest known version of a claim: the assumed one while
// the informer has not caught up with it.
func (b *volumeBinder) claim(namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	pvc, err := b.pvcs.PersistentVolumeClaims(namespace).Get(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.assumedPVC[claimKey(namespace, name)]; a != nil && (err != nil || !olderThan(a.obj.ResourceVersion, pvc.ResourceVersion)) {
		return a.obj, nil
	}
	return pvc, err
}

// volume returns the newest known version of a PV, assumed or informed.
func (b *volumeBinder) volume(name string) (*corev1.PersistentVolume, error) {
	pv, err := b.pvs.Get(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.assumedPVs[name]; a != nil && (err != nil || !olderThan(a.obj.ResourceVersion, pv.ResourceVersion)) {
		return a.obj, nil
	}
	return pv, err
}

// volumesOfClass lists the PVs of a storage class, assumed versions first.
func (b *volumeBinder) volumesOfClass(class string) []*corev1.PersistentVolume {
	objs, _ := b.pvIndex.ByIndex(pvClassIndex, class)
	out := make([]*corev1.PersistentVolume, 0, len(objs))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range objs {
		pv := o.(*corev1.PersistentVolume)
		if a := b.assumedPVs[pv.Name]; a != nil && !olderThan(a.obj.ResourceVersion, pv.ResourceVersion) {
			pv = a.obj
		}
		out = append(out, pv)
	}
	return out
}

// storageClass returns a class, or nil when it does not exist.
func (b *volumeBinder) storageClass(name string) *storagev1.StorageClass {
	sc, err := b.classes.Get(name)
	if err != nil {
		return nil
	}
	return sc
}

func (b *volumeBinder) assumePV(pv *corev1.PersistentVolume, written bool) {
	b.mu.Lock()
	b.assumedPVs[pv.Name] = &assumed[*corev1.PersistentVolume]{obj: pv, written: written}
	b.mu.Unlock()
}

func (b *volumeBinder) assumeClaim(pvc *corev1.PersistentVolumeClaim, written bool) {
	b.mu.Lock()
	b.assumedPVC[claimKey(pvc.Namespace, pvc.Name)] = &assumed[*corev1.PersistentVolumeClaim]{obj: pvc, written: written}
	b.mu.Unlock()
}

// forgetPV drops an assumption if it is still the given object.
func (b *volumeBinder) forgetPV(pv *corev1.PersistentVolume) {
	b.mu.Lock()
	if a := b.assumedPVs[pv.Name]; a != nil && a.obj == pv {
		delete(b.assumedPVs, pv.Name)
	}
	b.mu.Unlock()
}

func (b *volumeBinder) forgetClaim(pvc *corev1.PersistentVolumeClaim) {
	key := claimKey(pvc.Namespace, pvc.Name)
	b.mu.Lock()
	if a := b.assumedPVC[key]; a != nil && a.obj == pvc {
		delete(b.assumedPVC, key)
	}
	b.mu.Unlock()
}
