package apiserver

import (
	"context"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/internal/storage"
)

// LocalListerWatcher lists and watches a built-in resource, in every
// namespace, straight from its watch cache, for an informer of a
// component running in this process (the scheduler, the controllers).
// The informer then holds the cache's own objects instead of a decoded copy
// of each, and nothing is encoded or decoded between them: at scale this
// halves the memory the pods take. The objects are shared with every
// reader of the API and must never be changed, which client-go already
// asks of anything an informer returns.
//
// It reports false for a resource this server does not serve from a cache.
func (s *Server) LocalListerWatcher(gvr schema.GroupVersionResource) (cache.ListerWatcher, bool) {
	res := s.resources[gvr]
	if res == nil || res.custom != nil {
		return nil, false
	}
	return localListerWatcher{res}, true
}

// localListerWatcher serves one resource's LIST and WATCH as the HTTP
// handlers do, minus the encoding.
type localListerWatcher struct{ res *resource }

func (l localListerWatcher) List(opts metav1.ListOptions) (runtime.Object, error) {
	return l.ListWithContext(context.Background(), opts)
}

func (l localListerWatcher) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return l.WatchWithContext(context.Background(), opts)
}

// ListWithContext returns a List whose items are the cached objects
// themselves. A limit is ignored, as the watch cache ignores it for
// resourceVersion "0".
func (l localListerWatcher) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	filter, err := l.res.selectorFilter(opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		return nil, err
	}
	switch rv := opts.ResourceVersion; rv {
	case "":
		err = l.res.cache.WaitFresh(ctx)
	case "0":
		select {
		case <-l.res.cache.Ready():
		case <-ctx.Done():
			err = ctx.Err()
		}
	default:
		var n int64
		if n, err = parseResourceVersion(rv); err == nil {
			err = l.res.cache.WaitRev(ctx, n)
		}
	}
	if err != nil {
		return nil, storageError(err, l.res.gr, "")
	}
	entries, rev := l.res.cache.List(l.res.prefix, filter)
	list := &metav1.List{ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)},
		Items: make([]runtime.RawExtension, len(entries))}
	for i, e := range entries {
		list.Items[i].Object = e.Obj
	}
	return list, nil
}

// WatchWithContext streams the cached objects of each event. The watch
// ends when ctx does, when it is stopped, after opts.TimeoutSeconds, or
// when the cache drops it for falling behind; the informer then resumes
// from the last resourceVersion it saw.
func (l localListerWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	filter, err := l.res.selectorFilter(opts.LabelSelector, opts.FieldSelector)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, watchTimeout(opts.TimeoutSeconds))
	sw, err := l.res.openWatch(wctx, watchRequest{
		prefix:        l.res.prefix,
		filter:        filter,
		fieldSelector: opts.FieldSelector,
		rv:            opts.ResourceVersion,
		sendInitial:   opts.SendInitialEvents != nil && *opts.SendInitialEvents,
		bookmarks:     opts.AllowWatchBookmarks,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	w := &localWatch{stop: cancel, ch: make(chan watch.Event)}
	go w.run(wctx, sw, l.res)
	return w, nil
}

// localWatch is a cache watch seen as a watch.Interface.
type localWatch struct {
	stop context.CancelFunc
	ch   chan watch.Event
}

func (w *localWatch) Stop()                          { w.stop() }
func (w *localWatch) ResultChan() <-chan watch.Event { return w.ch }

func (w *localWatch) run(ctx context.Context, sw *storage.Watcher, res *resource) {
	defer close(w.ch)
	defer sw.Stop()
	defer w.stop()
	send := func(ev storage.Event) bool {
		select {
		case w.ch <- localEvent(ev, res):
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, ev := range sw.Initial() {
		if !send(ev) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sw.Events():
			if !ok || !send(ev) {
				return
			}
		}
	}
}

// localEvent is a cache event as client-go's: the cached object itself, or
// for a bookmark an empty object carrying the revision (and the annotation
// that ends a sendInitialEvents watch's initial events).
func localEvent(ev storage.Event, res *resource) watch.Event {
	if ev.Type != watch.Bookmark {
		return watch.Event{Type: ev.Type, Object: ev.Obj.Obj}
	}
	obj := res.New()
	obj.GetObjectKind().SetGroupVersionKind(res.gvk)
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(ev.Rev, 10))
	if storage.IsInitialEnd(ev) {
		m.SetAnnotations(map[string]string{initialEventsEndAnnotation: "true"})
	}
	return watch.Event{Type: watch.Bookmark, Object: obj}
}
