package deployment

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

func TestNewReplicaCountRespectsSurge(t *testing.T) {
	ten := int32(10)
	surge := intstr.FromString("25%")
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &ten, Strategy: appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge},
	}}}
	set := func(n int32) *appsv1.ReplicaSet { return &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Replicas: &n}} }
	old, fresh := set(10), set(0)
	// 25% of 10 rounds up to 3 extra pods.
	if got := newReplicaCount(d, []*appsv1.ReplicaSet{old, fresh}, fresh); got != 3 {
		t.Fatalf("first surge step = %d, want 3", got)
	}
	if got := newReplicaCount(d, []*appsv1.ReplicaSet{set(7), set(6)}, set(6)); got != 6 {
		t.Fatalf("at the surge limit the new set grew to %d", got)
	}
}

func TestScalingEventAndTemplateHash(t *testing.T) {
	five := int32(5)
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &five}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{DesiredReplicasAnnotation: "3"}}}
	if !scalingEvent(d, []*appsv1.ReplicaSet{rs}) {
		t.Fatal("resize from 3 to 5 not seen as a scaling event")
	}
	rs.Annotations[DesiredReplicasAnnotation] = "5"
	if scalingEvent(d, []*appsv1.ReplicaSet{rs}) {
		t.Fatal("no resize reported as one")
	}
	a := d.Spec.Template.DeepCopy()
	b := a.DeepCopy()
	b.Labels = map[string]string{"x": "y"}
	one := int32(1)
	if controllerutil.TemplateHash(a, nil) == controllerutil.TemplateHash(b, nil) || controllerutil.TemplateHash(a, nil) == controllerutil.TemplateHash(a, &one) {
		t.Fatal("hash does not separate templates or collision counts")
	}
}

func TestScaleProportionally(t *testing.T) {
	twenty := int32(20)
	zero := intstr.FromInt32(0)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default"}, Spec: appsv1.DeploymentSpec{
		Replicas: &twenty, Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &zero}},
	}}
	mk := func(name string, n int32, age time.Duration) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
			CreationTimestamp: metav1.NewTime(time.Now().Add(-age)), Annotations: map[string]string{DesiredReplicasAnnotation: "10"}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &n}}
	}
	newRS, oldRS := mk("new", 6, time.Minute), mk("old", 4, time.Hour)
	client := fake.NewClientset(newRS, oldRS)
	c := &Controller{client: client, recorder: record.NewFakeRecorder(10), log: slog.New(slog.DiscardHandler)}
	if err := c.scaleProportionally(context.Background(), d, []*appsv1.ReplicaSet{oldRS, newRS}); err != nil {
		t.Fatal(err)
	}
	got := func(name string) int32 {
		rs, err := client.AppsV1().ReplicaSets("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *rs.Spec.Replicas
	}
	if n, o := got("new"), got("old"); n != 12 || o != 8 {
		t.Fatalf("resize 10 -> 20 split as new=%d old=%d, want 12 and 8 (proportional)", n, o)
	}
}
