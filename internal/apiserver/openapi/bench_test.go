package openapi

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// BenchmarkBuildV2 measures the full v2 document as served with no custom
// resources: what every server pays on the first /openapi/v2 request.
func BenchmarkBuildV2(b *testing.B) {
	s, err := New(testResources, "v1.37.2")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.buildV2(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchmarkCustomV2 measures the v2 document with 20 custom resources
// added to the built-in one, as after a CRD change.
func benchmarkCustomV2(b *testing.B, cold bool) {
	s, err := New(testResources, "v1.37.2")
	if err != nil {
		b.Fatal(err)
	}
	base, _, err := s.builtinV2.Get()
	if err != nil {
		b.Fatal(err)
	}
	var crs []CustomResource
	for i := range 20 {
		crs = append(crs, CustomResource{
			GVR:  schema.GroupVersionResource{Group: fmt.Sprintf("g%d.example.com", i), Version: "v1", Resource: "things"},
			Kind: "Thing", Namespaced: true, Subresources: []string{"status", "scale"},
			Schema: spec.MapProperty(spec.StringProperty()),
		})
	}
	set := newCustomSet(crs)
	for b.Loop() {
		if cold {
			s.v2Parts = nil
		}
		if _, err := s.withCustomV2(base, set); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkV2CustomCold renders every custom resource (first build).
func BenchmarkV2CustomCold(b *testing.B) { benchmarkCustomV2(b, true) }

// BenchmarkV2CustomWarm reuses the parts of unchanged custom resources.
func BenchmarkV2CustomWarm(b *testing.B) { benchmarkCustomV2(b, false) }
