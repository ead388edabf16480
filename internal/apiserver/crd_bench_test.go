package apiserver_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// benchWidgetCRD is the CRD of bench/apiserver/extension.go: one version,
// a small structural schema with an enum and a minimum.
func benchWidgetCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.bench.skiff.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "bench.skiff.dev", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"color": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"blue"`)}, {Raw: []byte(`"red"`)}}},
							"size":  {Type: "integer", Minimum: ptr.To(0.0)},
						}},
					},
				}},
			}},
		},
	}
}

// BenchmarkCreate compares creating a custom object (dynamic client) with
// creating a ConfigMap of similar size (typed client) and a small pod, one
// client, through
// the whole server: HTTP, admission, storage in embedded etcd, watch cache.
func BenchmarkCreate(b *testing.B) {
	s := testserver.Start(b)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, nsObject("bench"), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	createEstablishedTB(b, s, benchWidgetCRD())
	gvr := schema.GroupVersionResource{Group: "bench.skiff.dev", Version: "v1", Resource: "widgets"}
	widgets := dynamic.NewForConfigOrDie(s.Config).Resource(gvr).Namespace("bench")
	configMaps := s.Client.CoreV1().ConfigMaps("bench")

	var seq int // names stay unique across -count runs
	b.Run("Widget", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			seq++
			w := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "bench.skiff.dev/v1", "kind": "Widget",
				"metadata": map[string]any{"name": fmt.Sprintf("w-%08d", seq), "labels": map[string]any{"app": "bench"}},
				"spec":     map[string]any{"color": "blue", "size": int64(3)},
			}}
			if _, err := widgets.Create(ctx, w, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Pod", func(b *testing.B) {
		// bench/apiserver's pod: defaulting, validation and admission of
		// the busiest built-in kind.
		b.ReportAllocs()
		defer reportCPU(b)()
		pods := s.Client.CoreV1().Pods("bench")
		for b.Loop() {
			seq++
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%08d", seq), Labels: map[string]string{"app": "bench"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.35", Command: []string{"sleep", "3600"}}}},
			}
			if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ConfigMap", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			seq++
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%08d", seq), Labels: map[string]string{"app": "bench"}},
				Data:       map[string]string{"color": "blue", "size": "3"},
			}
			if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportCPU starts measuring the process's CPU time (server, etcd and
// client together, which wall time on a busy machine hides); the returned
// func reports it per operation.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// createEstablishedTB creates crd and waits until its resource answers.
func createEstablishedTB(tb testing.TB, s *testserver.Server, crd *apiextensionsv1.CustomResourceDefinition) {
	tb.Helper()
	ctx := context.Background()
	if _, err := apiextclient.NewForConfigOrDie(s.Config).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: crd.Spec.Versions[0].Name, Resource: crd.Spec.Names.Plural}
	dyn := dynamic.NewForConfigOrDie(s.Config)
	testserver.Eventually(tb, crd.Name+" served", func() bool {
		_, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil
	})
}
