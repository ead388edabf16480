package volumeprotection

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func pod(name, claim, node string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.PodSpec{NodeName: node,
		Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
		Status: corev1.PodStatus{Phase: phase}}
}

func TestPVCProtection(t *testing.T) {
	now := metav1.Now()
	live := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}}
	deleting := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c",
		DeletionTimestamp: &now, Finalizers: []string{PVCFinalizer}}}
	tests := []struct {
		name          string
		claim         *corev1.PersistentVolumeClaim
		pods          []runtime.Object
		wantFinalizer bool
	}{
		{name: "a live claim gets the finalizer", claim: live, wantFinalizer: true},
		{name: "a running pod keeps it", claim: deleting, pods: []runtime.Object{pod("p", "c", "n1", corev1.PodRunning)}, wantFinalizer: true},
		{name: "a finished pod does not", claim: deleting, pods: []runtime.Object{pod("p", "c", "n1", corev1.PodSucceeded)}},
		{name: "an unscheduled pod does not", claim: deleting, pods: []runtime.Object{pod("p", "c", "", corev1.PodPending)}},
		{name: "a pod of another claim does not", claim: deleting, pods: []runtime.Object{pod("p", "other", "n1", corev1.PodRunning)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(append(tt.pods, tt.claim)...)
			factory := informers.NewSharedInformerFactory(client, 0)
			c := NewPVCProtection(client, factory, discard)
			t.Cleanup(c.queue.ShutDown)
			_ = factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(tt.claim)
			for _, p := range tt.pods {
				_ = factory.Core().V1().Pods().Informer().GetIndexer().Add(p)
			}
			if err := c.sync(context.Background(), "ns/c"); err != nil {
				t.Fatal(err)
			}
			got, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), "c", metav1.GetOptions{})
			if has := slices.Contains(got.Finalizers, PVCFinalizer); has != tt.wantFinalizer {
				t.Fatalf("finalizer %v, want %v", has, tt.wantFinalizer)
			}
		})
	}
}

func TestPVProtection(t *testing.T) {
	now := metav1.Now()
	for _, tt := range []struct {
		phase corev1.PersistentVolumePhase
		want  bool
	}{{corev1.VolumeBound, true}, {corev1.VolumeReleased, false}, {corev1.VolumeAvailable, false}} {
		pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv", DeletionTimestamp: &now, Finalizers: []string{PVFinalizer}},
			Status: corev1.PersistentVolumeStatus{Phase: tt.phase}}
		client := fake.NewClientset(pv)
		factory := informers.NewSharedInformerFactory(client, 0)
		c := NewPVProtection(client, factory, discard)
		_ = factory.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(pv)
		if err := c.sync(context.Background(), "pv"); err != nil {
			t.Fatal(err)
		}
		c.queue.ShutDown()
		got, _ := client.CoreV1().PersistentVolumes().Get(context.Background(), "pv", metav1.GetOptions{})
		if has := slices.Contains(got.Finalizers, PVFinalizer); has != tt.want {
			t.Errorf("%s: finalizer %v, want %v", tt.phase, has, tt.want)
		}
	}
}
