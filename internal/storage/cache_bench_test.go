package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// memCache returns a cache with no etcd behind it, marked ready, whose
// objects are testObjs whose value holds their fields and label (see
// podLikeAttrs). Events are fed with apply.
func memCache(tb testing.TB, history int) *Cache {
	tb.Helper()
	c := NewCache(&Store{}, CacheConfig{
		Prefix:  "/registry/pods/",
		History: history,
		Decode: func(data []byte, rev int64) (runtime.Object, error) {
			return &testObj{value: string(data), rev: rev}, nil
		},
		Attrs: podLikeAttrs,
	})
	close(c.ready)
	return c
}

// podLikeAttrs reads a test object's value "node|label|name" (missing
// parts are empty).
func podLikeAttrs(obj runtime.Object) (labels.Set, fields.Set) {
	parts := append(strings.SplitN(obj.(*testObj).value, "|", 3), "", "")
	return labels.Set{"value": parts[1]}, fields.Set{"spec.nodeName": parts[0], "metadata.name": parts[2]}
}

// kvEvent builds the etcd event the cache's watch would receive.
func kvEvent(key string, value, prev *string, rev, created int64) *clientv3.Event {
	ev := &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev, CreateRevision: created}}
	if value == nil {
		ev.Type = mvccpb.DELETE
	} else {
		ev.Kv.Value = []byte(*value)
	}
	if prev != nil {
		ev.PrevKv = &mvccpb.KeyValue{Key: []byte(key), Value: []byte(*prev), ModRevision: rev - 1, CreateRevision: created}
	}
	return ev
}

// nodeSelectorFilter is the filter the API server builds for
// fieldSelector=spec.nodeName=<node> (no label selector).
func nodeSelectorFilter(node string) Filter {
	ls := labels.Everything()
	fs := fields.OneTermEqualSelector("spec.nodeName", node)
	return func(e *Entry) bool { return ls.Matches(e.Labels) && fs.Matches(e.Fields) }
}

// BenchmarkCacheFanout measures one pod change (a pod re-bound from one
// node to another, as the scheduler and the pod's kubelet produce them)
// through a cache with 5,000 watchers, each selecting one node's pods, as
// 5,000 kubelets do. The cost is the cache's write path under its lock.
// "unindexed" offers each event to every watcher, as before the index;
// "indexed" registers the watchers as the API server does.
func BenchmarkCacheFanout(b *testing.B) {
	b.Run("unindexed", func(b *testing.B) { benchmarkCacheFanout(b, false) })
	b.Run("indexed", func(b *testing.B) { benchmarkCacheFanout(b, true) })
}

func benchmarkCacheFanout(b *testing.B, indexed bool) {
	const nodes, pods = 5000, 10000
	c := memCache(b, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < nodes; i++ {
		node := fmt.Sprintf("node-%d", i)
		opts := WatchOptions{Prefix: "/registry/pods/", Initial: true, Filter: nodeSelectorFilter(node), Buffer: 1000}
		if indexed {
			opts.IndexField, opts.IndexValue = "spec.nodeName", node
		}
		w, err := c.Watch(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range w.Events() {
			}
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bound := make([]string, pods)
	rev := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := rng.IntN(pods)
		node := fmt.Sprintf("node-%d", rng.IntN(nodes))
		key := fmt.Sprintf("/registry/pods/ns/p-%d", p)
		rev++
		var ev *clientv3.Event
		if bound[p] == "" {
			ev = kvEvent(key, &node, nil, rev, rev)
		} else {
			ev = kvEvent(key, &node, &bound[p], rev, 1)
		}
		c.apply(ev)
		bound[p] = node
	}
	b.StopTimer()
	cancel()
	c.closeAllWatchers()
	wg.Wait()
}
