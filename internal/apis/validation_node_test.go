package apis

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// fieldTypes lists errors as "path:Type", comma separated.
func fieldTypes(errs field.ErrorList) string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Field+":"+string(e.Type[len("FieldValue"):]))
	}
	return strings.Join(s, ",")
}

func TestValidateRuntimeClass(t *testing.T) {
	rc := func(mut func(*nodev1.RuntimeClass)) *nodev1.RuntimeClass {
		r := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "rc"}, Handler: "runc"}
		if mut != nil {
			mut(r)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		rc   *nodev1.RuntimeClass
		want string // fieldTypes of the errors
	}{
		{"valid", rc(nil), ""},
		{"handler required", rc(func(r *nodev1.RuntimeClass) { r.Handler = "" }), "handler:Required"},
		{"handler is a DNS label", rc(func(r *nodev1.RuntimeClass) { r.Handler = "Run_C" }), "handler:Invalid"},
		{"overhead negative", rc(func(r *nodev1.RuntimeClass) {
			r.Overhead = &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}}
		}), "overhead.limits[cpu]:Invalid"},
		{"overhead unknown resource", rc(func(r *nodev1.RuntimeClass) {
			r.Overhead = &nodev1.Overhead{PodFixed: corev1.ResourceList{"bogus": resource.MustParse("1")}}
		}), "overhead.limits[bogus]:Invalid"},
		{"scheduling bad label", rc(func(r *nodev1.RuntimeClass) {
			r.Scheduling = &nodev1.Scheduling{NodeSelector: map[string]string{"bad key!": "v"}}
		}), "scheduling.nodeSelector:Invalid"},
		{"scheduling duplicate toleration", rc(func(r *nodev1.RuntimeClass) {
			tol := corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists}
			r.Scheduling = &nodev1.Scheduling{Tolerations: []corev1.Toleration{tol, tol}}
		}), "scheduling.tolerations[1]:Duplicate"},
		{"toleration seconds need NoExecute", rc(func(r *nodev1.RuntimeClass) {
			r.Scheduling = &nodev1.Scheduling{Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](5)}}}
		}), "scheduling.tolerations[0].effect:Invalid"},
	} {
		if got := fieldTypes(validateRuntimeClass(tc.rc)); got != tc.want {
			t.Errorf("%s: errors %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRuntimeClassHandlerImmutable(t *testing.T) {
	old := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "rc"}, Handler: "runc"}
	changed := old.DeepCopy()
	changed.Handler = "kata"
	if got := fieldTypes(validateRuntimeClassUpdate(changed, old)); got != "handler:Invalid" {
		t.Errorf("handler change: errors %q, want handler:Invalid", got)
	}
	if got := fieldTypes(validateRuntimeClassUpdate(old.DeepCopy(), old)); got != "" {
		t.Errorf("no-op update: errors %q", got)
	}
}

func TestRuntimeClassResource(t *testing.T) {
	var found *Resource
	for _, r := range All() {
		if r.GVR == nodev1.SchemeGroupVersion.WithResource("runtimeclasses") {
			found = r
		}
	}
	if found == nil {
		t.Fatal("runtimeclasses not served")
	}
	if found.Namespaced || found.Kind != "RuntimeClass" || found.SingularName != "runtimeclass" || len(found.ShortNames) != 0 {
		t.Errorf("runtimeclasses = %+v, want cluster-scoped RuntimeClass without short names", found)
	}
	if errs := found.Validate(&nodev1.RuntimeClass{Handler: ""}); len(errs) == 0 {
		t.Error("the resource's Validate does not check the handler")
	}
}
