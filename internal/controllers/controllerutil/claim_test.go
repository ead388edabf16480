package controllerutil

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

var rsGVK = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

func orphanPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}}}
}

// TestClaimPodsRechecksOwnerBeforeAdopting covers the race the garbage
// collector's orphaning delete depends on: the informer still shows the
// owner alive while the API server already has it being deleted.
func TestClaimPodsRechecksOwnerBeforeAdopting(t *testing.T) {
	ctx := context.Background()
	cached := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "rs-uid"}}
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	now := metav1.Now()

	for _, tc := range []struct {
		name    string
		live    *appsv1.ReplicaSet
		wantErr string
	}{
		{name: "alive", live: cached},
		{name: "being deleted", live: &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "rs-uid", DeletionTimestamp: &now}}, wantErr: "has just been deleted"},
		{name: "recreated", live: &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "other"}}, wantErr: "is gone"},
		{name: "gone", wantErr: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, pod2 := orphanPod("p1"), orphanPod("p2")
			objs := []runtime.Object{pod, pod2}
			if tc.live != nil {
				objs = append(objs, tc.live)
			}
			client := fake.NewClientset(objs...)
			reads := 0
			fresh := func(ctx context.Context) (metav1.Object, error) {
				reads++
				return client.AppsV1().ReplicaSets("ns").Get(ctx, "rs", metav1.GetOptions{})
			}
			claimed, err := ClaimPods(ctx, client, cached, rsGVK, sel, []*corev1.Pod{pod, pod2}, fresh)
			got, _ := client.CoreV1().Pods("ns").Get(ctx, "p1", metav1.GetOptions{})
			if tc.wantErr == "" {
				if err != nil || len(claimed) != 2 {
					t.Fatalf("claimed %d, err %v; want both adopted", len(claimed), err)
				}
				if ref := metav1.GetControllerOf(got); ref == nil || ref.UID != "rs-uid" {
					t.Errorf("p1 not adopted: %v", got.OwnerReferences)
				}
				if reads != 1 {
					t.Errorf("owner read live %d times for two adoptions, want once", reads)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if len(got.OwnerReferences) != 0 {
				t.Errorf("p1 adopted by an owner that may not adopt: %v", got.OwnerReferences)
			}
		})
	}
}

// TestClaimPodsNoLiveReadWithoutAdoption keeps the steady state cheap: a
// sync that adopts nothing never reads the owner from the API server.
func TestClaimPodsNoLiveReadWithoutAdoption(t *testing.T) {
	owner := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rs", UID: "rs-uid"}}
	owned := orphanPod("p1")
	owned.OwnerReferences = []metav1.OwnerReference{ControllerRef(owner, rsGVK)}
	fresh := func(context.Context) (metav1.Object, error) {
		t.Error("owner read live without an adoption")
		return owner, nil
	}
	claimed, err := ClaimPods(context.Background(), fake.NewClientset(owned), owner, rsGVK,
		labels.SelectorFromSet(labels.Set{"app": "web"}), []*corev1.Pod{owned}, fresh)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claimed %d, err %v", len(claimed), err)
	}
}
