package storage

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// testObj is a minimal runtime.Object holding its raw value, so that the
// cache can be tested without the API types.
type testObj struct {
	value string
	rev   int64
}

func (o *testObj) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (o *testObj) DeepCopyObject() runtime.Object   { c := *o; return &c }

func startStore(t *testing.T) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return NewStore(e.Client)
}

func startCache(t *testing.T, s *Store, history int) *Cache {
	t.Helper()
	c := NewCache(s, CacheConfig{
		Prefix:  "/registry/things/",
		History: history,
		Decode: func(data []byte, rev int64) (runtime.Object, error) {
			return &testObj{value: string(data), rev: rev}, nil
		},
		Attrs: func(obj runtime.Object) (labels.Set, fields.Set) {
			return labels.Set{"value": obj.(*testObj).value}, nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-c.Ready()
	return c
}

func mustCreate(t *testing.T, s *Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Create(context.Background(), key, []byte(value))
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	return rev
}

func next(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func TestStoreConditionalWrites(t *testing.T) {
	s := startStore(t)
	ctx := context.Background()
	rev := mustCreate(t, s, "/k", "a")
	if _, err := s.Create(ctx, "/k", []byte("b")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	rev2, _, err := s.Update(ctx, "/k", []byte("b"), rev)
	if err != nil {
		t.Fatal(err)
	}
	_, cur, err := s.Update(ctx, "/k", []byte("c"), rev)
	if !errors.Is(err, ErrConflict) || string(cur.Value) != "b" || cur.Rev != rev2 {
		t.Fatalf("stale update: err=%v cur=%+v", err, cur)
	}
	if _, _, err := s.Delete(ctx, "/k", rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: %v", err)
	}
	if _, _, err := s.Delete(ctx, "/k", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "/k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestCacheListAndWatch(t *testing.T) {
	s := startStore(t)
	mustCreate(t, s, "/registry/things/ns1/a", "red")
	c := startCache(t, s, 100)
	mustCreate(t, s, "/registry/things/ns2/b", "blue")
	mustCreate(t, s, "/registry/otherthings/x", "ignored")
	if err := c.WaitFresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	all, _ := c.List("/registry/things/", nil)
	if len(all) != 2 || all[0].Key != "/registry/things/ns1/a" || all[1].Key != "/registry/things/ns2/b" {
		t.Fatalf("list = %v", keys(all))
	}
	ns2, _ := c.List("/registry/things/ns2/", nil)
	if len(ns2) != 1 {
		t.Fatalf("namespace list = %v", keys(ns2))
	}

	// A watch on value=red sees b turn red as ADDED and turn away as DELETED.
	sel := labels.SelectorFromSet(labels.Set{"value": "red"})
	w, err := c.Watch(context.Background(), WatchOptions{Prefix: "/registry/things/", Initial: true,
		Filter: func(e *Entry) bool { return sel.Matches(e.Labels) }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if init := w.Initial(); len(init) != 1 || init[0].Obj.Key != "/registry/things/ns1/a" {
		t.Fatalf("initial events = %+v", init)
	}
	kv, _ := s.Get(context.Background(), "/registry/things/ns2/b")
	r1, _, err := s.Update(context.Background(), kv.Key, []byte("red"), kv.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w); ev.Type != watch.Added || ev.Rev != r1 {
		t.Fatalf("got %s@%d, want ADDED@%d", ev.Type, ev.Rev, r1)
	}
	r2, _, err := s.Update(context.Background(), kv.Key, []byte("green"), r1)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w); ev.Type != watch.Deleted || ev.Rev != r2 {
		t.Fatalf("got %s@%d, want DELETED@%d", ev.Type, ev.Rev, r2)
	}

	// Resuming from r1 replays the change at r2 from history.
	w2, err := c.Watch(context.Background(), WatchOptions{Prefix: "/registry/things/", FromRev: r1})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if ev := next(t, w2); ev.Type != watch.Modified || ev.Obj.Obj.(*testObj).value != "green" {
		t.Fatalf("resumed event = %s %+v", ev.Type, ev.Obj.Obj)
	}
}

func TestCacheWatchTooOldIsCompacted(t *testing.T) {
	s := startStore(t)
	c := startCache(t, s, 3)
	first := mustCreate(t, s, "/registry/things/0", "x")
	for i := 1; i < 6; i++ {
		mustCreate(t, s, "/registry/things/"+strconv.Itoa(i), "x")
	}
	if err := c.WaitFresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Watch(context.Background(), WatchOptions{Prefix: "/registry/things/", FromRev: first}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from evicted revision: %v, want ErrCompacted", err)
	}
}

func TestWatcherStopsWithContext(t *testing.T) {
	s := startStore(t)
	c := startCache(t, s, 10)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.Watch(ctx, WatchOptions{Prefix: "/registry/things/", Initial: true})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-w.Events():
		if ok {
			t.Fatal("unexpected event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not closed after context cancel")
	}
	c.mu.RLock()
	n := len(c.watchers)
	c.mu.RUnlock()
	if n != 0 {
		t.Fatalf("%d watchers still registered", n)
	}
}

func keys(es []*Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}

// An event's previous state is the entry the cache held, not a second
// decoding of it: the history would otherwise keep two copies of every
// object it changed.
func TestEventPrevSharesCachedEntry(t *testing.T) {
	s := startStore(t)
	c := startCache(t, s, 10)
	ctx := context.Background()
	rev := mustCreate(t, s, "/registry/things/a", "one")
	if err := c.WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	before, ok := c.Get("/registry/things/a")
	if !ok {
		t.Fatal("created object not cached")
	}
	w, err := c.Watch(ctx, WatchOptions{Prefix: "/registry/things/", FromRev: rev})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, _, err := s.Update(ctx, "/registry/things/a", []byte("two"), rev); err != nil {
		t.Fatal(err)
	}
	ev := next(t, w)
	if ev.Type != watch.Modified || ev.Prev != before {
		t.Fatalf("event %s with prev %p, want Modified with the cached entry %p", ev.Type, ev.Prev, before)
	}
	if got := ev.Obj.Obj.(*testObj).value; got != "two" {
		t.Errorf("new state %q, want two", got)
	}
}

// The history ring grows as events come, keeping their order, up to its
// configured size; beyond it the oldest events are gone.
func TestHistoryGrowsInOrder(t *testing.T) {
	s := startStore(t)
	c := startCache(t, s, 100)
	ctx := context.Background()
	revs := make([]int64, 150)
	for i := range revs {
		revs[i] = mustCreate(t, s, "/registry/things/"+strconv.Itoa(i), strconv.Itoa(i))
	}
	if err := c.WaitRev(ctx, revs[149]); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, WatchOptions{Prefix: "/registry/things/", FromRev: revs[59]})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := 60; i < 150; i++ {
		if ev := next(t, w); ev.Rev != revs[i] || ev.Obj.Obj.(*testObj).value != strconv.Itoa(i) {
			t.Fatalf("event %d: rev %d value %q, want rev %d", i, ev.Rev, ev.Obj.Obj.(*testObj).value, revs[i])
		}
	}
	if _, err := c.Watch(ctx, WatchOptions{Prefix: "/registry/things/", FromRev: revs[40]}); !errors.Is(err, ErrCompacted) {
		t.Errorf("watch from an event out of the 100 kept: %v, want ErrCompacted", err)
	}
}
