package persistentvolume

import (
	"context"
	"io"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func TestExpanderGrowsHostPathVolumes(t *testing.T) {
	tests := []struct {
		name     string
		source   corev1.PersistentVolumeSource
		wantSize string
	}{
		{name: "hostPath grows", source: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}, wantSize: "5Gi"},
		{name: "others wait for their resizer", source: corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}, wantSize: "1Gi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pvc := claim("5Gi", "grow")
			pvc.Spec.VolumeName = "pv"
			pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
				Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
			pv := volume("pv", "1Gi", "grow", claimRef("ns", "c", "uid-c"))
			pv.Spec.PersistentVolumeSource = tt.source
			client := fake.NewClientset(pvc, pv)
			factory := informers.NewSharedInformerFactory(client, 0)
			e := NewExpander(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
			e.recorder = record.NewFakeRecorder(5)
			t.Cleanup(e.queue.ShutDown)
			_ = factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(pvc)
			_ = factory.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(pv)
			if err := e.sync(context.Background(), "ns/c"); err != nil {
				t.Fatal(err)
			}
			gotPV, _ := client.CoreV1().PersistentVolumes().Get(context.Background(), "pv", metav1.GetOptions{})
			gotPVC, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), "c", metav1.GetOptions{})
			if s := gotPV.Spec.Capacity.Storage().String(); s != tt.wantSize {
				t.Errorf("volume capacity %s, want %s", s, tt.wantSize)
			}
			if s := gotPVC.Status.Capacity.Storage().String(); s != tt.wantSize {
				t.Errorf("claim capacity %s, want %s", s, tt.wantSize)
			}
		})
	}
}
