package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// A test object's value is "node|label|name": the fields spec.nodeName
// and metadata.name and the label "value" (see podLikeAttrs).
func objValue(node, label, name string) string { return node + "|" + label + "|" + name }

// selectorFilter is the filter the API server builds from a label and a
// field selector.
func selectorFilter(t *testing.T, label, field string) Filter {
	t.Helper()
	ls, err := labels.Parse(label)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fields.ParseSelector(field)
	if err != nil {
		t.Fatal(err)
	}
	return func(e *Entry) bool { return ls.Matches(e.Labels) && fs.Matches(e.Fields) }
}

// delivered is what a watcher received, reduced to comparable values.
type delivered struct {
	Type  watch.EventType
	Key   string
	Value string
	Rev   int64
}

func drain(w *Watcher) []delivered {
	var out []delivered
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return append(out, delivered{Type: "CLOSED"})
			}
			d := delivered{Type: ev.Type, Rev: ev.Rev}
			if ev.Obj != nil && ev.Type != watch.Bookmark {
				d.Key, d.Value = ev.Obj.Key, ev.Obj.Obj.(*testObj).value
			}
			out = append(out, d)
		default:
			return out
		}
	}
}

// change is one write to the cache's input, as etcd reports it.
type change struct {
	key         string
	value, prev *string // nil value: delete; nil prev: create
}

// oracle computes, by brute force over the writes, what a watcher with
// filter and prefix must see: an object that enters the selection is
// ADDED, one that leaves it DELETED (in its new state), as upstream.
func oracle(changes []change, firstRev int64, prefix string, filter Filter) []delivered {
	var out []delivered
	for i, ch := range changes {
		rev := firstRev + int64(i)
		if !strings.HasPrefix(ch.key, prefix) {
			continue
		}
		matches := func(v *string) bool {
			if v == nil {
				return false
			}
			l, f := podLikeAttrs(&testObj{value: *v})
			return filter(&Entry{Labels: l, Fields: NewFields(f)})
		}
		in, was := matches(ch.value), matches(ch.prev)
		switch {
		case ch.value == nil && was:
			out = append(out, delivered{watch.Deleted, ch.key, *ch.prev, rev})
		case ch.value == nil:
		case in && was:
			out = append(out, delivered{watch.Modified, ch.key, *ch.value, rev})
		case in:
			out = append(out, delivered{watch.Added, ch.key, *ch.value, rev})
		case was:
			out = append(out, delivered{watch.Deleted, ch.key, *ch.value, rev})
		}
	}
	return out
}

// randomChanges creates, moves, relabels and deletes objects at random
// over a few nodes, in two namespaces.
func randomChanges(rng *rand.Rand, n int) []change {
	nodes := []string{"", "a", "b", "c"}
	labelValues := []string{"x", "y"}
	current := map[string]string{}
	var out []change
	for len(out) < n {
		key := fmt.Sprintf("/registry/pods/ns%d/p%d", rng.IntN(2), rng.IntN(8))
		name := key[strings.LastIndex(key, "/")+1:]
		old, exists := current[key]
		if exists && rng.IntN(5) == 0 {
			prev := old
			out = append(out, change{key: key, prev: &prev})
			delete(current, key)
			continue
		}
		v := objValue(nodes[rng.IntN(len(nodes))], labelValues[rng.IntN(len(labelValues))], name)
		if rng.IntN(4) == 0 && rng.IntN(2) == 0 {
			v = objValue("", "", name) // a value with neither field nor label
		}
		ch := change{key: key, value: &v}
		if exists {
			prev := old
			ch.prev = &prev
		}
		out = append(out, ch)
		current[key] = v
	}
	return out
}

func applyChanges(c *Cache, changes []change, firstRev int64) {
	for i, ch := range changes {
		rev := firstRev + int64(i)
		created := rev
		if ch.prev != nil {
			created = 1
		}
		c.apply(kvEvent(ch.key, ch.value, ch.prev, rev, created))
	}
}

type watchCase struct {
	prefix, label, field string
}

// TestIndexedDeliveryMatchesBruteForce feeds random writes to a cache whose
// watchers are indexed by their field selector's equality, each beside an
// unindexed twin with the same filter, and checks that both receive
// exactly what a brute-force filter over the writes predicts.
func TestIndexedDeliveryMatchesBruteForce(t *testing.T) {
	cases := []watchCase{
		{"/registry/pods/", "", "spec.nodeName=a"},
		{"/registry/pods/", "", "spec.nodeName=b"},
		{"/registry/pods/", "", "spec.nodeName="},
		{"/registry/pods/ns0/", "", "spec.nodeName=c"},
		{"/registry/pods/", "value=x", "spec.nodeName=a"},
		{"/registry/pods/", "", "spec.nodeName=a,metadata.name=p3"},
		{"/registry/pods/ns1/", "", "metadata.name=p1"},
		{"/registry/pods/", "", "metadata.name=p0,spec.nodeName!=b"},
		{"/registry/pods/", "value=y", ""},
		{"/registry/pods/", "", "spec.nodeName!=a"},
	}
	for seed := uint64(0); seed < 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		changes := randomChanges(rng, 300)
		c := memCache(t, 1000)
		type pair struct {
			wc                watchCase
			indexed, unindexd *Watcher
		}
		var pairs []pair
		for _, wc := range cases {
			filter := selectorFilter(t, wc.label, wc.field)
			opts := WatchOptions{Prefix: wc.prefix, Initial: true, Filter: filter, Buffer: 10000}
			plain, err := c.Watch(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			opts.IndexField, opts.IndexValue = indexOf(t, wc.field)
			indexed, err := c.Watch(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, pair{wc, indexed, plain})
		}
		applyChanges(c, changes, 2)
		for _, p := range pairs {
			want := oracle(changes, 2, p.wc.prefix, selectorFilter(t, p.wc.label, p.wc.field))
			got, gotPlain := drain(p.indexed), drain(p.unindexd)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d, watch %+v: indexed delivery\n got %v\nwant %v", seed, p.wc, got, want)
			}
			if !reflect.DeepEqual(gotPlain, want) {
				t.Fatalf("seed %d, watch %+v: unindexed delivery\n got %v\nwant %v", seed, p.wc, gotPlain, want)
			}
			p.indexed.Stop()
			p.unindexd.Stop()
		}
		if n := len(c.index.byField) + len(c.index.unindexed); n != 0 {
			t.Fatalf("index keeps %d entries after every watcher stopped: %+v", n, c.index)
		}
	}
}

// indexOf is the API server's choice of index for a field selector.
func indexOf(t *testing.T, selector string) (string, string) {
	t.Helper()
	fs, err := fields.ParseSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fs.Requirements() {
		if r.Operator == "=" || r.Operator == "==" {
			return r.Field, r.Value
		}
	}
	return "", ""
}

func nodeWatch(t *testing.T, c *Cache, node string, opts WatchOptions) *Watcher {
	t.Helper()
	opts.Prefix = "/registry/pods/"
	opts.Filter = selectorFilter(t, "", "spec.nodeName="+node)
	opts.IndexField, opts.IndexValue = "spec.nodeName", node
	if opts.Buffer == 0 {
		opts.Buffer = 100
	}
	w, err := c.Watch(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func types(ds []delivered) []watch.EventType {
	out := make([]watch.EventType, len(ds))
	for i, d := range ds {
		out[i] = d.Type
	}
	return out
}

// TestIndexedWatchFollowsPodAcrossNodes binds a pod, moves it and deletes
// it, and checks what each node's watcher sees.
func TestIndexedWatchFollowsPodAcrossNodes(t *testing.T) {
	c := memCache(t, 100)
	a, b := nodeWatch(t, c, "a", WatchOptions{Initial: true}), nodeWatch(t, c, "b", WatchOptions{Initial: true})
	unbound := nodeWatch(t, c, "", WatchOptions{Initial: true})
	v := func(node string) *string { s := objValue(node, "", "p"); return &s }
	key := "/registry/pods/ns/p"
	applyChanges(c, []change{
		{key: key, value: v("")},
		{key: key, value: v("a"), prev: v("")},
		{key: key, value: v("a"), prev: v("a")},
		{key: key, value: v("b"), prev: v("a")},
		{key: key, prev: v("b")},
	}, 10)
	for _, tc := range []struct {
		name string
		w    *Watcher
		want []watch.EventType
	}{
		{"unbound", unbound, []watch.EventType{watch.Added, watch.Deleted}},
		{"a", a, []watch.EventType{watch.Added, watch.Modified, watch.Deleted}},
		{"b", b, []watch.EventType{watch.Added, watch.Deleted}},
	} {
		if got := types(drain(tc.w)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("watcher of node %q got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestIndexedWatchReplaysHistoryAndGetsBookmarks: a watch resuming from a
// revision is replayed only its node's changes, and indexed watchers get
// bookmarks like any other.
func TestIndexedWatchReplaysHistoryAndGetsBookmarks(t *testing.T) {
	c := memCache(t, 100)
	v := func(node, name string) *string { s := objValue(node, "", name); return &s }
	applyChanges(c, []change{
		{key: "/registry/pods/ns/p", value: v("a", "p")},
		{key: "/registry/pods/ns/q", value: v("b", "q")},
		{key: "/registry/pods/ns/p", value: v("b", "p"), prev: v("a", "p")},
	}, 10)
	w := nodeWatch(t, c, "a", WatchOptions{FromRev: 9, Bookmarks: true})
	c.sendBookmarks()
	want := []delivered{
		{watch.Added, "/registry/pods/ns/p", objValue("a", "", "p"), 10},
		{watch.Deleted, "/registry/pods/ns/p", objValue("b", "", "p"), 12},
		{Type: watch.Bookmark, Rev: 12},
	}
	if got := drain(w); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestIndexedWatcherClosedWhenFullLeavesIndex: a watcher whose buffer
// fills is closed and forgotten by the index, and the others go on.
func TestIndexedWatcherClosedWhenFullLeavesIndex(t *testing.T) {
	c := memCache(t, 100)
	slow := nodeWatch(t, c, "a", WatchOptions{Buffer: 1})
	other := nodeWatch(t, c, "a", WatchOptions{Buffer: 10})
	v := func(name string) *string { s := objValue("a", "", name); return &s }
	applyChanges(c, []change{
		{key: "/registry/pods/ns/p", value: v("p")},
		{key: "/registry/pods/ns/q", value: v("q")},
	}, 10)
	if got := types(drain(slow)); !reflect.DeepEqual(got, []watch.EventType{watch.Added, "CLOSED"}) {
		t.Fatalf("slow watcher got %v", got)
	}
	if got := types(drain(other)); len(got) != 2 {
		t.Fatalf("other watcher got %v", got)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if set := c.index.byField["spec.nodeName"]["a"]; len(set) != 1 {
		t.Fatalf("index holds %d watchers of node a, want 1", len(set))
	}
}
