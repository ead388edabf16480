package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Entry is one object as the cache holds it. Obj is shared by every reader
// and must never be mutated; copy it first.
type Entry struct {
	Key    string
	Obj    runtime.Object
	Rev    int64
	Labels labels.Set
	Fields Fields

	encoded atomic.Pointer[[]byte]
}

// Encoded returns the object encoded by enc, computing it once per entry so
// that many readers share one serialisation.
func (e *Entry) Encoded(enc func(runtime.Object) ([]byte, error)) ([]byte, error) {
	if b := e.encoded.Load(); b != nil {
		return *b, nil
	}
	b, err := enc(e.Obj)
	if err != nil {
		return nil, err
	}
	e.encoded.Store(&b)
	return b, nil
}

// Event is one change seen by the cache. For Deleted, Obj is the last state
// of the object stamped with the deletion revision.
type Event struct {
	Type watch.EventType
	Obj  *Entry
	Prev *Entry
	Rev  int64
}

// Decoder turns a stored value at a revision into an object with its
// resourceVersion set.
type Decoder func(data []byte, rev int64) (runtime.Object, error)

// AttrFunc returns the label and field sets used by selectors.
type AttrFunc func(obj runtime.Object) (labels.Set, fields.Set)

// CacheConfig configures a Cache.
type CacheConfig struct {
	Prefix   string // etcd key prefix of the resource, ending in "/"
	Decode   Decoder
	Attrs    AttrFunc
	History  int           // events kept for watches that resume; default 10000
	Bookmark time.Duration // interval of bookmark events; default 30s
	Logger   *slog.Logger
}

// Cache mirrors one resource prefix of etcd in memory. One etcd watch feeds
// it; LIST and WATCH are served from it.
type Cache struct {
	cfg   CacheConfig
	store *Store

	mu       sync.RWMutex
	items    *btree.BTreeG[*Entry]
	rev      int64 // every change up to rev has been applied
	oldest   int64 // events with Rev > oldest are all in ring
	ring     []Event
	ringHead int // index of the oldest event
	ringLen  int
	watchers map[*Watcher]struct{}
	index    watcherIndex  // the same watchers, by the field they select on
	changed  chan struct{} // closed and replaced whenever rev advances

	revs     revReader         // shared reads of etcd's revision (WaitFresh)
	progress progressRequester // shared progress requests (WaitRev)

	ready chan struct{}
}

// NewCache returns a cache; Run fills and maintains it.
func NewCache(store *Store, cfg CacheConfig) *Cache {
	if cfg.History <= 0 {
		cfg.History = 10000
	}
	if cfg.Bookmark <= 0 {
		cfg.Bookmark = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cache{
		cfg:      cfg,
		store:    store,
		items:    btree.NewG(32, func(a, b *Entry) bool { return a.Key < b.Key }),
		watchers: map[*Watcher]struct{}{},
		index:    newWatcherIndex(),
		changed:  make(chan struct{}),
		ready:    make(chan struct{}),
	}
	c.revs.read = store.CurrentRevision
	c.progress.send = func(ctx context.Context) error {
		// Other resources' writes also advance etcd's revision; a progress
		// notification tells the cache it has seen everything up to it.
		// It must carry the watch's context metadata to reach its stream.
		return store.client.RequestProgress(clientv3.WithRequireLeader(ctx))
	}
	return c
}

// readTimeout bounds a shared etcd read or progress request, which no
// single caller's context governs.
const readTimeout = 5 * time.Second

// Run lists the prefix, then applies etcd watch events until ctx ends.
// After a compaction or a broken watch it relists and closes all watchers,
// which then resume from their last revision or get 410 Gone.
func (c *Cache) Run(ctx context.Context) {
	defer c.closeAllWatchers()
	bookmarks := time.NewTicker(c.cfg.Bookmark)
	defer bookmarks.Stop()
	for ctx.Err() == nil {
		rev, err := c.relist(ctx)
		if err != nil {
			c.cfg.Logger.Error("watch cache relist failed", "prefix", c.cfg.Prefix, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		c.watch(ctx, rev, bookmarks.C)
	}
}

func (c *Cache) relist(ctx context.Context) (int64, error) {
	var (
		all   []KV
		rev   int64
		start string
	)
	for {
		page, r, more, err := c.store.listPageRaw(ctx, c.cfg.Prefix, start, rev, 5000)
		if err != nil {
			return 0, err
		}
		rev = r
		all = append(all, page...)
		if !more || len(page) == 0 {
			break
		}
		start = page[len(page)-1].Key + "\x00"
	}
	items := btree.NewG(32, func(a, b *Entry) bool { return a.Key < b.Key })
	for _, kv := range all {
		e, err := c.entry(kv.Key, kv.Value, kv.Rev)
		if err != nil {
			c.cfg.Logger.Error("skipping undecodable object", "key", kv.Key, "err", err)
			continue
		}
		items.ReplaceOrInsert(e)
	}
	c.mu.Lock()
	c.items = items
	c.rev, c.oldest = rev, rev
	c.ring, c.ringLen, c.ringHead = nil, 0, 0 // its events' objects may be gone
	c.closeWatchersLocked()
	c.broadcastLocked()
	c.mu.Unlock()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	return rev, nil
}

func (c *Cache) watch(ctx context.Context, rev int64, bookmarks <-chan time.Time) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := c.store.client.Watch(clientv3.WithRequireLeader(wctx), c.cfg.Prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	for {
		select {
		case <-ctx.Done():
			return
		case <-bookmarks:
			c.sendBookmarks()
		case resp, ok := <-ch:
			if !ok {
				return
			}
			if err := resp.Err(); err != nil {
				c.cfg.Logger.Warn("watch cache etcd watch ended", "prefix", c.cfg.Prefix, "err", err)
				return
			}
			if resp.IsProgressNotify() {
				c.advance(resp.Header.Revision)
				continue
			}
			for _, ev := range resp.Events {
				c.apply(ev)
			}
		}
	}
}

// entry decodes a value as etcd holds it (decrypting it first).
func (c *Cache) entry(key string, value []byte, rev int64) (*Entry, error) {
	value, _, err := c.store.fromStorage(key, value)
	if err != nil {
		return nil, err
	}
	obj, err := c.cfg.Decode(value, rev)
	if err != nil {
		return nil, err
	}
	e := &Entry{Key: key, Obj: obj, Rev: rev}
	if c.cfg.Attrs != nil {
		var fs fields.Set
		e.Labels, fs = c.cfg.Attrs(obj)
		e.Fields = NewFields(fs)
	}
	return e, nil
}

func (c *Cache) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	rev := ev.Kv.ModRevision
	var out Event
	out.Rev = rev
	if ev.PrevKv != nil {
		out.Prev = c.prevEntry(key, ev.PrevKv)
	}
	switch ev.Type {
	case clientv3.EventTypeDelete:
		out.Type = watch.Deleted
		if ev.PrevKv == nil {
			c.advance(rev)
			return
		}
		// The deleted object is reported in its last state, stamped with
		// the revision of the deletion, as upstream does.
		last, err := c.entry(key, ev.PrevKv.Value, rev)
		if err != nil {
			c.cfg.Logger.Error("undecodable deleted object", "key", key, "err", err)
			c.advance(rev)
			return
		}
		out.Obj = last
	default:
		cur, err := c.entry(key, ev.Kv.Value, rev)
		if err != nil {
			c.cfg.Logger.Error("undecodable object", "key", key, "err", err)
			c.advance(rev)
			return
		}
		out.Obj = cur
		out.Type = watch.Modified
		if ev.IsCreate() {
			out.Type = watch.Added
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if out.Type == watch.Deleted {
		c.items.Delete(&Entry{Key: key})
	} else {
		c.items.ReplaceOrInsert(out.Obj)
	}
	c.pushLocked(out)
	if rev > c.rev {
		c.rev = rev
	}
	c.index.offer(out)
	c.broadcastLocked()
}

// prevEntry is the state of key before an event. The cache already holds
// it, decoded, unless it missed that revision; sharing it saves a decode
// per event and a copy of the object in every event the history keeps.
func (c *Cache) prevEntry(key string, kv *mvccpb.KeyValue) *Entry {
	c.mu.RLock()
	cur, ok := c.items.Get(&Entry{Key: key})
	c.mu.RUnlock()
	if ok && cur.Rev == kv.ModRevision {
		return cur
	}
	prev, err := c.entry(key, kv.Value, kv.ModRevision)
	if err != nil {
		return nil
	}
	return prev
}

func (c *Cache) pushLocked(ev Event) {
	if c.ringLen == len(c.ring) && len(c.ring) < c.cfg.History {
		c.growRingLocked()
	}
	n := len(c.ring)
	if c.ringLen == n {
		c.oldest = c.ring[c.ringHead].Rev
		c.ring[c.ringHead] = ev
		c.ringHead = (c.ringHead + 1) % n
		return
	}
	c.ring[(c.ringHead+c.ringLen)%n] = ev
	c.ringLen++
}

// growRingLocked doubles the history ring, up to its configured size,
// keeping the events in order. Most resources never fill it: allocating
// every ring whole took 30 MB for ninety resources, nearly all of it empty.
func (c *Cache) growRingLocked() {
	ring := make([]Event, min(max(2*len(c.ring), 64), c.cfg.History))
	for i := range c.ringLen {
		ring[i] = c.ring[(c.ringHead+i)%len(c.ring)]
	}
	c.ring, c.ringHead = ring, 0
}

func (c *Cache) advance(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev > c.rev {
		c.rev = rev
		c.broadcastLocked()
	}
}

func (c *Cache) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Cache) sendBookmarks() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for w := range c.watchers {
		if w.bookmarks {
			w.offer(Event{Type: watch.Bookmark, Rev: c.rev})
		}
	}
}

// Ready is closed once the first list has been loaded.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// Rev returns the revision up to which the cache is complete.
func (c *Cache) Rev() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// WaitFresh blocks until the cache has caught up with etcd's current
// revision, so that a read from the cache is as fresh as a quorum read.
// Concurrent callers share one read of the revision.
func (c *Cache) WaitFresh(ctx context.Context) error {
	want, err := c.revs.get(ctx)
	if err != nil {
		return err
	}
	return c.WaitRev(ctx, want)
}

// WaitRev blocks until the cache is complete up to rev. Concurrent
// waiters share the progress requests that make etcd report the revision.
func (c *Cache) WaitRev(ctx context.Context, rev int64) error {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		c.mu.RLock()
		cur, changed := c.rev, c.changed
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		c.progress.request()
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("watch cache of %s did not reach revision %d (at %d): %w", c.cfg.Prefix, rev, cur, ErrTooLargeRV)
		}
	}
}

// ErrTooLargeRV means a client asked for a revision the cache has not seen.
var ErrTooLargeRV = errors.New("too large resource version")

// Filter selects entries.
type Filter func(*Entry) bool

// List returns the entries under prefix (a sub-prefix of the cache's, e.g.
// one namespace) that pass filter, in key order, and the cache revision.
func (c *Cache) List(prefix string, filter Filter) ([]*Entry, int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*Entry, 0, min(c.items.Len(), 1024))
	c.items.AscendGreaterOrEqual(&Entry{Key: prefix}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		if filter == nil || filter(e) {
			out = append(out, e)
		}
		return true
	})
	return out, c.rev
}

// Get returns the cached entry for key.
func (c *Cache) Get(key string) (*Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.items.Get(&Entry{Key: key})
}

// Len returns how many objects the cache holds (APF's LIST work estimate).
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.items.Len()
}

// WatchOptions says where a watch starts and what it sees.
type WatchOptions struct {
	Prefix string
	Filter Filter
	// FromRev: deliver events after this revision. Zero with Initial set
	// delivers the current state as Added events first.
	FromRev   int64
	Initial   bool
	Bookmarks bool
	// InitialEndBookmark sends a bookmark after the initial events
	// (sendInitialEvents=true).
	InitialEndBookmark bool
	Buffer             int
	// IndexField and IndexValue, when set, name an equality the Filter
	// requires of the entry's Fields (fieldSelector spec.nodeName=N gives
	// "spec.nodeName", "N"); the cache then offers the watcher only the
	// events whose object has that value before or after the change. The
	// Filter must reject every entry with Fields[IndexField] != IndexValue.
	IndexField, IndexValue string
}

// Watch starts a watcher. It fails with ErrCompacted when FromRev is older
// than the history the cache keeps.
func (c *Cache) Watch(ctx context.Context, opts WatchOptions) (*Watcher, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if opts.FromRev > 0 && !opts.Initial {
		if err := c.WaitRev(ctx, opts.FromRev); err != nil {
			return nil, err
		}
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 1000
	}
	w := &Watcher{
		cache:      c,
		prefix:     opts.Prefix,
		filter:     opts.Filter,
		bookmarks:  opts.Bookmarks,
		indexField: opts.IndexField,
		indexValue: opts.IndexValue,
		scope:      scopeOf(c.cfg.Prefix, opts.Prefix, opts.IndexField, opts.IndexValue),
		ch:         make(chan Event, opts.Buffer),
		done:       make(chan struct{}),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.Initial {
		w.minRev = c.rev
		c.items.AscendGreaterOrEqual(&Entry{Key: opts.Prefix}, func(e *Entry) bool {
			if !strings.HasPrefix(e.Key, opts.Prefix) {
				return false
			}
			if w.filter == nil || w.filter(e) {
				w.initial = append(w.initial, Event{Type: watch.Added, Obj: e, Rev: e.Rev})
			}
			return true
		})
		if opts.InitialEndBookmark {
			w.initial = append(w.initial, Event{Type: watch.Bookmark, Rev: c.rev, Obj: initialEndMarker})
		}
	} else {
		if opts.FromRev < c.oldest {
			return nil, ErrCompacted
		}
		w.minRev = opts.FromRev
		n := len(c.ring)
		for i := 0; i < c.ringLen; i++ {
			ev := c.ring[(c.ringHead+i)%n]
			if ev.Rev > opts.FromRev {
				if !w.offer(ev) {
					return nil, ErrCompacted
				}
			}
		}
	}
	c.watchers[w] = struct{}{}
	c.index.add(w)
	go func() {
		select {
		case <-ctx.Done():
			w.Stop()
		case <-w.done:
		}
	}()
	return w, nil
}

// initialEndMarker marks the bookmark that ends the initial events.
var initialEndMarker = &Entry{Key: "\x00initial-events-end"}

// IsInitialEnd reports whether a bookmark event ends the initial events.
func IsInitialEnd(ev Event) bool { return ev.Obj == initialEndMarker }

func (c *Cache) closeWatchersLocked() {
	for w := range c.watchers {
		w.closeLocked()
	}
}

func (c *Cache) closeAllWatchers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeWatchersLocked()
}

// Watcher delivers the events of one watch.
type Watcher struct {
	cache     *Cache
	prefix    string
	filter    Filter
	bookmarks bool
	// indexField and indexValue place the watcher in the cache's index.
	indexField, indexValue string
	scope                  watchScope // what it watches, for InterestedWatchers
	minRev                 int64
	initial                []Event
	ch                     chan Event
	done                   chan struct{}
	closed                 bool
}

// Initial returns the events to send before those from Events.
func (w *Watcher) Initial() []Event { return w.initial }

// Events delivers changes; it is closed when the watcher stops or falls
// too far behind, after which the client should resume from its last
// revision.
func (w *Watcher) Events() <-chan Event { return w.ch }

// Stop ends the watch and releases its resources.
func (w *Watcher) Stop() {
	w.cache.mu.Lock()
	defer w.cache.mu.Unlock()
	w.closeLocked()
}

func (w *Watcher) closeLocked() {
	if w.closed {
		return
	}
	w.closed = true
	delete(w.cache.watchers, w)
	w.cache.index.remove(w)
	close(w.done)
	close(w.ch)
}

// offer queues ev for the watcher after filtering, turning changes that
// cross the selector boundary into Added or Deleted as upstream does. The
// cache lock is held. A watcher whose buffer is full is closed.
func (w *Watcher) offer(ev Event) bool {
	if w.closed {
		return false
	}
	if ev.Type != watch.Bookmark {
		if ev.Rev <= w.minRev || !strings.HasPrefix(ev.Obj.Key, w.prefix) {
			return true
		}
		ev = w.translate(ev)
		if ev.Type == "" {
			return true
		}
	}
	select {
	case w.ch <- ev:
		return true
	default:
		if ev.Type == watch.Bookmark {
			return true
		}
		w.closeLocked()
		return false
	}
}

func (w *Watcher) translate(ev Event) Event {
	if w.filter == nil {
		return ev
	}
	cur := w.filter(ev.Obj)
	switch ev.Type {
	case watch.Added, watch.Deleted:
		if !cur {
			ev.Type = ""
		}
	case watch.Modified:
		prev := ev.Prev != nil && w.filter(ev.Prev)
		switch {
		case cur && !prev:
			ev.Type = watch.Added
		case !cur && prev:
			ev.Type = watch.Deleted
		case !cur && !prev:
			ev.Type = ""
		}
	}
	return ev
}
