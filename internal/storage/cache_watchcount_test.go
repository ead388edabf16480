package storage

import (
	"context"
	"testing"
)

// TestInterestedWatchersCountsByScope checks the counts API Priority and
// Fairness charges a write for: the whole resource's watches always, the
// namespace's for an object in it, one object's only when the write names
// it; and that stopped watchers stop counting.
func TestInterestedWatchersCountsByScope(t *testing.T) {
	c := memCache(t, 10)
	ctx := context.Background()
	watch := func(opts WatchOptions) *Watcher {
		t.Helper()
		w, err := c.Watch(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	all := watch(WatchOptions{Prefix: "/registry/pods/"})
	watch(WatchOptions{Prefix: "/registry/pods/", IndexField: "spec.nodeName", IndexValue: "n1"}) // all namespaces
	watch(WatchOptions{Prefix: "/registry/pods/a/"})
	watch(WatchOptions{Prefix: "/registry/pods/a/"})
	watch(WatchOptions{Prefix: "/registry/pods/b/"})
	watch(WatchOptions{Prefix: "/registry/pods/a/", IndexField: "metadata.name", IndexValue: "p"})
	watch(WatchOptions{Prefix: "/registry/pods/a/", IndexField: "metadata.name", IndexValue: "q"})

	for _, tc := range []struct {
		ns, name string
		want     int
	}{
		{"a", "p", 2 + 2 + 1}, // resource, namespace a, object a/p
		{"a", "", 2 + 2},      // a create: no single-object watch
		{"b", "p", 2 + 1},     // a/p's watch is not b/p's
		{"c", "x", 2},
		{"", "", 2},
	} {
		if got := c.InterestedWatchers(tc.ns, tc.name); got != tc.want {
			t.Errorf("InterestedWatchers(%q, %q) = %d, want %d", tc.ns, tc.name, got, tc.want)
		}
	}

	all.Stop()
	all.Stop() // stopping twice counts once
	if got := c.InterestedWatchers("c", ""); got != 1 {
		t.Errorf("after a stop: InterestedWatchers(c) = %d, want 1", got)
	}
}
