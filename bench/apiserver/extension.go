package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// widgetsGVR is the benchmark's custom resource.
var widgetsGVR = schema.GroupVersionResource{Group: "bench.skiff.dev", Version: "v1", Resource: "widgets"}

// extensionCosts compares creating custom objects with creating
// ConfigMaps of the same size (the aim: within 30 %), and times
// server-side apply of 1,000 objects.
func extensionCosts(ctx context.Context, cfg *rest.Config, cs []kubernetes.Interface, n int) error {
	if err := createWidgetCRD(ctx, cfg); err != nil {
		return err
	}
	// As many connections as the ConfigMap clients have: client-go would
	// otherwise share one transport among dynamic clients of one config.
	dyns := make([]*dynamic.DynamicClient, len(cs))
	for i := range dyns {
		c := rest.CopyConfig(cfg)
		c.QPS, c.Burst = -1, 0
		c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt }
		dyns[i] = dynamic.NewForConfigOrDie(c)
	}
	var seq atomic.Int64
	cmCreate := func(c kubernetes.Interface) error {
		i := seq.Add(1)
		_, err := c.CoreV1().ConfigMaps("bench").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%06d", i), Labels: map[string]string{"app": "bench"}},
			Data:       map[string]string{"color": "blue", "size": "3"},
		}, metav1.CreateOptions{})
		return err
	}
	lat, elapsed, err := load(cs, 64, n, cmCreate)
	if err != nil {
		return err
	}
	cmRate := float64(len(lat)) / elapsed.Seconds()
	report("ConfigMap creates per second, 64 clients", fmt.Sprintf("%.0f /s (p50 / p99 %s)", cmRate, pct(lat)), "")

	var wseq atomic.Int64
	crCreate := func(c kubernetes.Interface) error {
		i := wseq.Add(1)
		d := dyns[int(i)%len(dyns)]
		_, err := d.Resource(widgetsGVR).Namespace("bench").Create(ctx, widget(fmt.Sprintf("w-%06d", i), 3), metav1.CreateOptions{})
		return err
	}
	lat, elapsed, err = load(cs, 64, n, crCreate)
	if err != nil {
		return err
	}
	crRate := float64(len(lat)) / elapsed.Seconds()
	report("custom object creates per second, 64 clients", fmt.Sprintf("%.0f /s (p50 / p99 %s)", crRate, pct(lat)),
		fmt.Sprintf("%.0f %% of ConfigMaps (aim: within 30 %%)", 100*crRate/cmRate))

	// Server-side apply: 1,000 ConfigMaps created by apply, then applied
	// again with a change, by 64 clients.
	const applies = 1000
	for _, round := range []string{"create", "change"} {
		var aseq atomic.Int64
		apply := func(c kubernetes.Interface) error {
			i := aseq.Add(1)
			body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa-%04d","namespace":"bench"},"data":{"round":%q}}`, i, round)
			_, err := c.CoreV1().ConfigMaps("bench").Patch(ctx, fmt.Sprintf("ssa-%04d", i), types.ApplyPatchType, []byte(body),
				metav1.PatchOptions{FieldManager: "bench", Force: ptr.To(true)})
			return err
		}
		lat, elapsed, err := load(cs, 64, applies, apply)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("server-side apply of %d ConfigMaps (%s)", applies, round),
			fmt.Sprintf("%s (p50 / p99 %s)", elapsed.Round(time.Millisecond), pct(lat)), "")
	}
	return nil
}

func widget(name string, size int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "bench.skiff.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name, "labels": map[string]any{"app": "bench"}},
		"spec":     map[string]any{"color": "blue", "size": size},
	}}
}

// createWidgetCRD creates a namespaced CRD with a small structural schema
// and waits until it is established.
func createWidgetCRD(ctx context.Context, cfg *rest.Config) error {
	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
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
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
	if err != nil {
		return err
	}
	crds := dynamic.NewForConfigOrDie(cfg).Resource(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create CRD: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := dynamic.NewForConfigOrDie(cfg).Resource(widgetsGVR).Namespace("bench").List(ctx, metav1.ListOptions{Limit: 1}); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("widgets not served 30 s after the CRD was created")
}
