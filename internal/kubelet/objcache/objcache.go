// Package objcache gives the kubelet the ConfigMaps and Secrets its pods
// use without listing or watching them cluster-wide, which the Node
// authorizer forbids: each referenced object gets its own informer, a
// list/watch restricted to that one name, kept while some pod of the node
// refers to it.
package objcache

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// syncTimeout bounds how long Get waits for a new informer's first list.
const syncTimeout = 2 * time.Second

// ListFunc and WatchFunc read one namespace's objects with the given options.
type (
	ListFunc  func(ctx context.Context, namespace string, opts metav1.ListOptions) (runtime.Object, error)
	WatchFunc func(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
)

type key struct{ namespace, name string }

// item is the informer of one object.
type item struct {
	refs   int
	store  cache.Store
	ctrl   cache.Controller
	cancel context.CancelFunc // nil until started
}

// Manager caches the objects of one resource that the node's pods refer to.
type Manager[T runtime.Object] struct {
	resource schema.GroupResource
	client   any // tells the reflector whether watch-list streaming works
	list     ListFunc
	watch    WatchFunc
	onChange func(namespace, name string)

	mu    sync.Mutex
	ctx   context.Context // set by Run; nil before
	items map[key]*item
	pods  map[types.UID]map[key]bool
	done  bool           // Run has returned or is returning
	wg    sync.WaitGroup // running informers
}

// New returns a manager over list/watch, which use client; onChange (may
// be nil) is called when a cached object is added, updated or deleted.
func New[T runtime.Object](resource schema.GroupResource, client any, list ListFunc, watch WatchFunc, onChange func(namespace, name string)) *Manager[T] {
	return &Manager[T]{
		resource: resource, client: client, list: list, watch: watch, onChange: onChange,
		items: map[key]*item{}, pods: map[types.UID]map[key]bool{},
	}
}

// ForConfigMaps caches ConfigMaps through client.
func ForConfigMaps(client kubernetes.Interface, onChange func(namespace, name string)) *Manager[*v1.ConfigMap] {
	return New[*v1.ConfigMap](v1.Resource("configmaps"), client,
		func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().ConfigMaps(ns).List(ctx, o)
		},
		func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().ConfigMaps(ns).Watch(ctx, o)
		}, onChange)
}

// ForSecrets caches Secrets through client.
func ForSecrets(client kubernetes.Interface, onChange func(namespace, name string)) *Manager[*v1.Secret] {
	return New[*v1.Secret](v1.Resource("secrets"), client,
		func(ctx context.Context, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().Secrets(ns).List(ctx, o)
		},
		func(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().Secrets(ns).Watch(ctx, o)
		}, onChange)
}

// Run starts the informers of the objects referenced so far and those
// referenced later, until ctx ends; it returns once all have stopped.
func (m *Manager[T]) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	for _, it := range m.items {
		m.start(it)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	m.done = true // no informer starts after this
	m.mu.Unlock()
	m.wg.Wait() // every informer runs under ctx
}

// SetPodRefs records the names (in namespace) that pod uid refers to now,
// starting informers for new names and stopping those no pod needs any more.
func (m *Manager[T]) SetPodRefs(uid types.UID, namespace string, names []string) {
	want := make(map[key]bool, len(names))
	for _, n := range names {
		want[key{namespace, n}] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.pods[uid]
	for k := range want {
		if !old[k] {
			m.acquire(k)
		}
	}
	for k := range old {
		if !want[k] {
			m.release(k)
		}
	}
	if len(want) == 0 {
		delete(m.pods, uid)
		return
	}
	m.pods[uid] = want
}

// RemovePod forgets pod uid's references.
func (m *Manager[T]) RemovePod(uid types.UID) {
	m.SetPodRefs(uid, "", nil)
}

// Get returns the cached object, a NotFound error when it does not exist,
// or an error when no pod refers to it or its informer has not listed yet.
func (m *Manager[T]) Get(namespace, name string) (T, error) {
	var zero T
	m.mu.Lock()
	it, ok := m.items[key{namespace, name}]
	m.mu.Unlock()
	if !ok {
		return zero, fmt.Errorf("%s %s/%s is not referenced by a pod of this node", m.resource, namespace, name)
	}
	if !it.ctrl.HasSynced() {
		ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
		defer cancel()
		synced := func(context.Context) (bool, error) { return it.ctrl.HasSynced(), nil }
		if wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, synced) != nil {
			return zero, fmt.Errorf("%s %s/%s: timed out waiting for the cache to sync", m.resource, namespace, name)
		}
	}
	obj, exists, err := it.store.GetByKey(namespace + "/" + name)
	if err != nil {
		return zero, err
	}
	if !exists {
		return zero, apierrors.NewNotFound(m.resource, name)
	}
	t, ok := obj.(T)
	if !ok {
		return zero, errors.New("objcache: unexpected object type in store")
	}
	return t, nil
}

// Len is how many objects are cached.
func (m *Manager[T]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

// acquire adds a reference to k, creating (and, once running, starting)
// its informer. m.mu is held.
func (m *Manager[T]) acquire(k key) {
	if it, ok := m.items[k]; ok {
		it.refs++
		return
	}
	it := &item{refs: 1}
	selector := fields.OneTermEqualSelector("metadata.name", k.name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return m.list(ctx, k.namespace, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return m.watch(ctx, k.namespace, o)
		},
	}
	changed := func(any) {
		if m.onChange != nil {
			m.onChange(k.namespace, k.name)
		}
	}
	it.store, it.ctrl = cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, m.client),
		ObjectType:    newObject[T](),
		Handler:       informerutil.OnAnyChange(changed),
	})
	m.items[k] = it
	if m.ctx != nil {
		m.start(it)
	}
}

// release drops a reference, stopping the informer at zero. m.mu is held.
func (m *Manager[T]) release(k key) {
	it, ok := m.items[k]
	if !ok {
		return
	}
	if it.refs--; it.refs > 0 {
		return
	}
	delete(m.items, k)
	if it.cancel != nil {
		it.cancel()
	}
}

// start runs the item's informer under m.ctx. m.mu is held.
func (m *Manager[T]) start(it *item) {
	if m.done {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	it.cancel = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		it.ctrl.RunWithContext(ctx)
	}()
}

// newObject returns an empty T (a pointer to a struct) for the informer's
// type checks.
func newObject[T runtime.Object]() runtime.Object {
	var zero T
	return reflect.New(reflect.TypeOf(zero).Elem()).Interface().(runtime.Object)
}
