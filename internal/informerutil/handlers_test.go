package informerutil

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestOnAnyChangeSeesObjectsNotTombstones(t *testing.T) {
	old := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "1"}}
	cur := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: "2"}}
	var seen []string
	h := OnAnyChange(func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			t.Fatalf("handler got %T, want *v1.Pod", obj)
		}
		seen = append(seen, p.ResourceVersion)
	})
	h.OnAdd(old, false)
	h.OnUpdate(old, cur)
	h.OnDelete(cur)
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "default/p", Obj: old})
	want := []string{"1", "2", "2", "1"}
	if len(seen) != len(want) {
		t.Fatalf("handler saw %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("handler saw %v, want %v", seen, want)
		}
	}
}

func TestOnAddOrUpdateIgnoresDeletes(t *testing.T) {
	calls := 0
	h := OnAddOrUpdate(func(any) { calls++ })
	p := &corev1.Pod{}
	h.OnAdd(p, true)
	h.OnUpdate(p, p)
	h.OnDelete(p)
	if calls != 2 {
		t.Errorf("handler called %d times, want 2 (add and update)", calls)
	}
}
