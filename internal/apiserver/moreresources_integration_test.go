package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// moreKind is one of the storage, DRA, autoscaling, certificate and
// migration kinds, with a valid and an invalid object and the columns
// kubectl get prints for it.
type moreKind struct {
	gvr        schema.GroupVersionResource
	namespaced bool
	valid      string // JSON
	invalid    string // JSON
	badField   string // a field path in the 422's causes
	columns    []string
}

var moreKinds = []moreKind{
	{
		gvr:      schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "csidrivers"},
		valid:    `{"apiVersion":"storage.k8s.io/v1","kind":"CSIDriver","metadata":{"name":"csi.example.com"},"spec":{}}`,
		invalid:  `{"apiVersion":"storage.k8s.io/v1","kind":"CSIDriver","metadata":{"name":"bad.example.com"},"spec":{"volumeLifecycleModes":["Bogus"]}}`,
		badField: "spec.volumeLifecycleModes",
		columns:  []string{"Name", "AttachRequired", "PodInfoOnMount", "StorageCapacity", "TokenRequests", "RequiresRepublish", "Modes", "Age"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "csinodes"},
		valid:    `{"apiVersion":"storage.k8s.io/v1","kind":"CSINode","metadata":{"name":"node-a"},"spec":{"drivers":[{"name":"csi.example.com","nodeID":"a"}]}}`,
		invalid:  `{"apiVersion":"storage.k8s.io/v1","kind":"CSINode","metadata":{"name":"node-b"},"spec":{"drivers":[{"name":"csi.example.com"}]}}`,
		badField: "spec.drivers[0].nodeID",
		columns:  []string{"Name", "Drivers", "Age"},
	},
	{
		gvr:        schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "csistoragecapacities"},
		namespaced: true,
		valid:      `{"apiVersion":"storage.k8s.io/v1","kind":"CSIStorageCapacity","metadata":{"name":"cap"},"storageClassName":"fast","capacity":"10Gi"}`,
		invalid:    `{"apiVersion":"storage.k8s.io/v1","kind":"CSIStorageCapacity","metadata":{"name":"cap2"},"storageClassName":"Not_Valid"}`,
		badField:   "storageClassName",
		columns:    []string{"Name", "StorageClassName", "Capacity"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "volumeattachments"},
		valid:    `{"apiVersion":"storage.k8s.io/v1","kind":"VolumeAttachment","metadata":{"name":"va"},"spec":{"attacher":"csi.example.com","nodeName":"node-a","source":{"persistentVolumeName":"pv1"}}}`,
		invalid:  `{"apiVersion":"storage.k8s.io/v1","kind":"VolumeAttachment","metadata":{"name":"va2"},"spec":{"attacher":"csi.example.com","nodeName":"node-a","source":{}}}`,
		badField: "spec.source",
		columns:  []string{"Name", "Attacher", "PV", "Node", "Attached", "Age"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "volumeattributesclasses"},
		valid:    `{"apiVersion":"storage.k8s.io/v1","kind":"VolumeAttributesClass","metadata":{"name":"gold"},"driverName":"csi.example.com","parameters":{"iops":"1000"}}`,
		invalid:  `{"apiVersion":"storage.k8s.io/v1","kind":"VolumeAttributesClass","metadata":{"name":"silver"},"driverName":"csi.example.com"}`,
		badField: "parameters",
		columns:  []string{"Name", "DriverName", "Age"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "resource.k8s.io", Version: "v1", Resource: "deviceclasses"},
		valid:    `{"apiVersion":"resource.k8s.io/v1","kind":"DeviceClass","metadata":{"name":"gpu"},"spec":{"selectors":[{"cel":{"expression":"device.driver == \"gpu.example.com\""}}]}}`,
		invalid:  `{"apiVersion":"resource.k8s.io/v1","kind":"DeviceClass","metadata":{"name":"gpu2"},"spec":{"selectors":[{}]}}`,
		badField: "spec.selectors[0].cel",
		columns:  []string{"Name", "Age"},
	},
	{
		gvr:        schema.GroupVersionResource{Group: "resource.k8s.io", Version: "v1", Resource: "resourceclaims"},
		namespaced: true,
		valid:      `{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{"name":"claim"},"spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu"}}]}}}`,
		invalid:    `{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaim","metadata":{"name":"claim2"},"spec":{"devices":{"requests":[{"name":"gpu"}]}}}`,
		badField:   "spec.devices.requests[0]",
		columns:    []string{"Name", "State", "Age"},
	},
	{
		gvr:        schema.GroupVersionResource{Group: "resource.k8s.io", Version: "v1", Resource: "resourceclaimtemplates"},
		namespaced: true,
		valid:      `{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate","metadata":{"name":"tmpl"},"spec":{"spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu"}}]}}}}`,
		invalid:    `{"apiVersion":"resource.k8s.io/v1","kind":"ResourceClaimTemplate","metadata":{"name":"tmpl2"},"spec":{"spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"gpu","allocationMode":"Some"}}]}}}}`,
		badField:   "spec.spec.devices.requests[0].exactly.allocationMode",
		columns:    []string{"Name", "Age"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "resource.k8s.io", Version: "v1", Resource: "resourceslices"},
		valid:    `{"apiVersion":"resource.k8s.io/v1","kind":"ResourceSlice","metadata":{"name":"slice"},"spec":{"driver":"gpu.example.com","nodeName":"node-a","pool":{"name":"node-a","resourceSliceCount":1},"devices":[{"name":"gpu-0"}]}}`,
		invalid:  `{"apiVersion":"resource.k8s.io/v1","kind":"ResourceSlice","metadata":{"name":"slice2"},"spec":{"driver":"gpu.example.com","pool":{"name":"p","resourceSliceCount":1}}}`,
		badField: "spec",
		columns:  []string{"Name", "Node", "Driver", "Pool", "Age"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "resource.k8s.io", Version: "v1", Resource: "devicetaintrules"},
		valid:    `{"apiVersion":"resource.k8s.io/v1","kind":"DeviceTaintRule","metadata":{"name":"rule"},"spec":{"taint":{"key":"example.com/broken","effect":"NoSchedule"}}}`,
		invalid:  `{"apiVersion":"resource.k8s.io/v1","kind":"DeviceTaintRule","metadata":{"name":"rule2"},"spec":{"taint":{"key":"example.com/broken","effect":"Bogus"}}}`,
		badField: "spec.taint.effect",
		columns:  []string{"Name", "Key", "Value", "Effect", "TimeAdded", "Age"},
	},
	{
		gvr:        schema.GroupVersionResource{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
		namespaced: true,
		valid:      `{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"hpa"},"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"maxReplicas":3}}`,
		invalid:    `{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"hpa2"},"spec":{"scaleTargetRef":{"kind":"Deployment","name":"web"},"minReplicas":5,"maxReplicas":3}}`,
		badField:   "spec.maxReplicas",
		columns:    []string{"Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"},
	},
	{
		gvr:        schema.GroupVersionResource{Group: "autoscaling", Version: "v1", Resource: "horizontalpodautoscalers"},
		namespaced: true,
		valid:      `{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"hpa-v1"},"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"maxReplicas":3,"targetCPUUtilizationPercentage":50}}`,
		invalid:    `{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"hpa-v1b"},"spec":{"scaleTargetRef":{"kind":"Deployment","name":"web"},"maxReplicas":3,"targetCPUUtilizationPercentage":0}}`,
		badField:   "spec.metrics[0].resource.target.averageUtilization",
		columns:    []string{"Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "clustertrustbundles"},
		valid:    `{"apiVersion":"certificates.k8s.io/v1","kind":"ClusterTrustBundle","metadata":{"name":"example.com:signer:one"},"spec":{"signerName":"example.com/signer","trustBundle":` + jsonString(testCAPEM) + `}}`,
		invalid:  `{"apiVersion":"certificates.k8s.io/v1","kind":"ClusterTrustBundle","metadata":{"name":"empty"},"spec":{"trustBundle":""}}`,
		badField: "spec.trustBundle",
		columns:  []string{"Name", "SignerName"},
	},
	{
		gvr:      schema.GroupVersionResource{Group: "storagemigration.k8s.io", Version: "v1", Resource: "storageversionmigrations"},
		valid:    `{"apiVersion":"storagemigration.k8s.io/v1","kind":"StorageVersionMigration","metadata":{"name":"mig"},"spec":{"resource":{"group":"apps","resource":"deployments"}}}`,
		invalid:  `{"apiVersion":"storagemigration.k8s.io/v1","kind":"StorageVersionMigration","metadata":{"name":"mig2"},"spec":{"resource":{"group":"apps"}}}`,
		badField: "spec.resource.resource",
		columns:  []string{"Name", "Resource", "Status"},
	},
}

// testCAPEM is a self-signed certificate, only parsed for its PEM shape.
const testCAPEM = `-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAw
DgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlow
EjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d
7VNhbWvZLWPuj/RtHFjvtJBEwOkhbN/BnnE8rnZR8+sbwnc/KhCk3FhnpHZnQz7B
5aETbbIgmuvewdjvSBSjYzBhMA4GA1UdDwEB/wQEAwICpDATBgNVHSUEDDAKBggr
BgEFBQcDATAPBgNVHRMBAf8EBTADAQH/MCkGA1UdEQQiMCCCDmxvY2FsaG9zdDo1
NDUzgg4xMjcuMC4wLjE6NTQ1MzAKBggqhkjOPQQDAgNIADBFAiEA2zpJEPQyz6/l
Wf86aX6PepsntZv2GYlA5UpabfT2EZICICpJ5h/iI+i341gBmLiAFQOyTDT+/wQc
6MF9+Yw1Yy0t
-----END CERTIFICATE-----
`

var storageCSINode = storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: "node-z"}}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (k moreKind) url(base, name string) string {
	u := base + "/apis/" + k.gvr.Group + "/" + k.gvr.Version + "/"
	if k.namespaced {
		u += "namespaces/default/"
	}
	u += k.gvr.Resource
	if name != "" {
		u += "/" + name
	}
	return u
}

func TestMoreResourcesCreateGetListTableAndReject(t *testing.T) {
	s := testserver.Start(t)
	dyn := dynamic.NewForConfigOrDie(s.Config)
	ctx := context.Background()
	for _, k := range moreKinds {
		t.Run(k.gvr.Group+"/"+k.gvr.Version+"/"+k.gvr.Resource, func(t *testing.T) {
			code, out := httpCall(t, http.MethodPost, k.url(s.URL, ""), "application/json", "application/json", k.valid)
			if code != http.StatusCreated {
				t.Fatalf("create: %d %s", code, out)
			}
			var created unstructured.Unstructured
			if err := json.Unmarshal(out, &created.Object); err != nil {
				t.Fatal(err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(k.gvr)
			if k.namespaced {
				ri = dyn.Resource(k.gvr).Namespace("default")
			}
			got, err := ri.Get(ctx, created.GetName(), metav1.GetOptions{})
			if err != nil || got.GetUID() != created.GetUID() {
				t.Fatalf("get: %v (uid %s, want %s)", err, got.GetUID(), created.GetUID())
			}
			list, err := ri.List(ctx, metav1.ListOptions{})
			if err != nil || len(list.Items) == 0 {
				t.Fatalf("list: %v, %d items", err, len(list.Items))
			}

			code, out = httpCall(t, http.MethodGet, k.url(s.URL, ""), tableAccept, "", "")
			var table metav1.Table
			if err := json.Unmarshal(out, &table); code != http.StatusOK || err != nil {
				t.Fatalf("table: %d %s", code, out)
			}
			var cols []string
			for _, c := range table.ColumnDefinitions {
				cols = append(cols, c.Name)
			}
			if !slices.Equal(cols, k.columns) {
				t.Errorf("columns = %v, want %v", cols, k.columns)
			}
			if len(table.Rows) == 0 || len(table.Rows[0].Cells) != len(k.columns) {
				t.Errorf("rows = %+v, want cells for %d columns", table.Rows, len(k.columns))
			}

			code, out = httpCall(t, http.MethodPost, k.url(s.URL, ""), "application/json", "application/json", k.invalid)
			var st metav1.Status
			if err := json.Unmarshal(out, &st); code != http.StatusUnprocessableEntity || err != nil || st.Details == nil {
				t.Fatalf("invalid object: %d %s, want 422", code, out)
			}
			fields := make([]string, 0, len(st.Details.Causes))
			for _, c := range st.Details.Causes {
				fields = append(fields, c.Field)
			}
			if !slices.Contains(fields, k.badField) {
				t.Errorf("causes name %v, want %s", fields, k.badField)
			}
		})
	}
}

func TestMoreResourcesDiscovery(t *testing.T) {
	s := testserver.Start(t)
	groups, lists, err := s.Client.Discovery().ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Name != "autoscaling" {
			continue
		}
		if len(g.Versions) != 2 || g.Versions[0].Version != "v2" || g.Versions[1].Version != "v1" || g.PreferredVersion.Version != "v2" {
			t.Errorf("autoscaling versions %+v, preferred %+v; want v2, v1 preferring v2", g.Versions, g.PreferredVersion)
		}
	}
	type want struct {
		kind       string
		namespaced bool
		short      []string
		categories []string
		status     bool
	}
	wants := map[string]want{
		"storage.k8s.io/v1/csidrivers":                        {kind: "CSIDriver"},
		"storage.k8s.io/v1/csinodes":                          {kind: "CSINode", status: true},
		"storage.k8s.io/v1/csistoragecapacities":              {kind: "CSIStorageCapacity", namespaced: true},
		"storage.k8s.io/v1/volumeattachments":                 {kind: "VolumeAttachment", status: true},
		"storage.k8s.io/v1/volumeattributesclasses":           {kind: "VolumeAttributesClass", short: []string{"vac"}},
		"resource.k8s.io/v1/deviceclasses":                    {kind: "DeviceClass"},
		"resource.k8s.io/v1/devicetaintrules":                 {kind: "DeviceTaintRule", status: true},
		"resource.k8s.io/v1/resourceclaims":                   {kind: "ResourceClaim", namespaced: true, status: true},
		"resource.k8s.io/v1/resourceclaimtemplates":           {kind: "ResourceClaimTemplate", namespaced: true},
		"resource.k8s.io/v1/resourceslices":                   {kind: "ResourceSlice"},
		"autoscaling/v1/horizontalpodautoscalers":             {kind: "HorizontalPodAutoscaler", namespaced: true, short: []string{"hpa"}, categories: []string{"all"}, status: true},
		"autoscaling/v2/horizontalpodautoscalers":             {kind: "HorizontalPodAutoscaler", namespaced: true, short: []string{"hpa"}, categories: []string{"all"}, status: true},
		"certificates.k8s.io/v1/clustertrustbundles":          {kind: "ClusterTrustBundle"},
		"certificates.k8s.io/v1/podcertificaterequests":       {kind: "PodCertificateRequest", namespaced: true, status: true},
		"storagemigration.k8s.io/v1/storageversionmigrations": {kind: "StorageVersionMigration", status: true},
	}
	seen := map[string]bool{}
	for _, l := range lists {
		names := map[string]bool{}
		for _, r := range l.APIResources {
			names[r.Name] = true
		}
		for _, r := range l.APIResources {
			key := l.GroupVersion + "/" + r.Name
			w, ok := wants[key]
			if !ok {
				continue
			}
			seen[key] = true
			if r.Kind != w.kind || r.Namespaced != w.namespaced || !slices.Equal(r.ShortNames, w.short) || !slices.Equal(r.Categories, w.categories) {
				t.Errorf("%s: %+v, want %+v", key, r, w)
			}
			if r.SingularName != strings.ToLower(w.kind) {
				t.Errorf("%s: singularName %q", key, r.SingularName)
			}
			if names[r.Name+"/status"] != w.status {
				t.Errorf("%s: status subresource served = %v, want %v", key, names[r.Name+"/status"], w.status)
			}
		}
	}
	for key := range wants {
		if !seen[key] {
			t.Errorf("%s not in discovery", key)
		}
	}
}

// TestHPAOneObjectTwoVersions: an HPA written in either version is read in
// the other, from one etcd key, with what v1 cannot say in annotations.
func TestHPAOneObjectTwoVersions(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	v1c := s.Client.AutoscalingV1().HorizontalPodAutoscalers("default")
	v2c := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default")
	target := autoscalingv1.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}

	// v1 created, read as v2.
	if _, err := v1c.Create(ctx, &autoscalingv1.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "from-v1"},
		Spec:       autoscalingv1.HorizontalPodAutoscalerSpec{ScaleTargetRef: target, MaxReplicas: 4, TargetCPUUtilizationPercentage: ptr.To[int32](55)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h2, err := v2c.Get(ctx, "from-v1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(h2.Spec.MinReplicas, 0) != 1 || len(h2.Spec.Metrics) != 1 || h2.Spec.Metrics[0].Resource == nil ||
		ptr.Deref(h2.Spec.Metrics[0].Resource.Target.AverageUtilization, 0) != 55 {
		t.Errorf("v1-created HPA read as v2: %+v", h2.Spec)
	}

	// v2 created with a memory metric and a behavior, read as v1.
	mem := resource.MustParse("200Mi")
	w, err := v1c.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=from-v2"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	_, err = v2c.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "from-v2"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference(target), MaxReplicas: 6,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &mem},
			}}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h1, err := v1c.Get(ctx, "from-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h1.Spec.TargetCPUUtilizationPercentage != nil || !strings.Contains(h1.Annotations["autoscaling.alpha.kubernetes.io/metrics"], "memory") ||
		!strings.Contains(h1.Annotations["autoscaling.alpha.kubernetes.io/behavior"], `"StabilizationWindowSeconds":60`) {
		t.Errorf("v2-created HPA read as v1: spec %+v annotations %v", h1.Spec, h1.Annotations)
	}
	select {
	case ev := <-w.ResultChan():
		if got, ok := ev.Object.(*autoscalingv1.HorizontalPodAutoscaler); ev.Type != watch.Added || !ok || got.Name != "from-v2" {
			t.Errorf("v1 watch event %s %T", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no v1 watch event for an HPA created in v2")
	}

	// A v1 read-modify-write keeps what only v2 can express.
	h1.Spec.MaxReplicas = 9
	if _, err := v1c.Update(ctx, h1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h2, err = v2c.Get(ctx, "from-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h2.Spec.MaxReplicas != 9 || len(h2.Spec.Metrics) != 1 || h2.Spec.Metrics[0].Resource.Name != corev1.ResourceMemory ||
		h2.Spec.Behavior == nil || ptr.Deref(h2.Spec.Behavior.ScaleDown.StabilizationWindowSeconds, 0) != 60 {
		t.Errorf("after a v1 update, v2 reads %+v", h2.Spec)
	}
	if _, ok := h2.Annotations["autoscaling.alpha.kubernetes.io/metrics"]; ok {
		t.Errorf("v2 object carries v1's round-trip annotations: %v", h2.Annotations)
	}
	// Both versions list the same two objects (one etcd prefix).
	l1, err1 := v1c.List(ctx, metav1.ListOptions{})
	l2, err2 := v2c.List(ctx, metav1.ListOptions{})
	if err1 != nil || err2 != nil || len(l1.Items) != 2 || len(l2.Items) != 2 {
		t.Errorf("lists: v1 %v (%d), v2 %v (%d); want 2 each", err1, len(l1.Items), err2, len(l2.Items))
	}
}

func TestResourceSliceFieldSelectors(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	c := s.Client.ResourceV1().ResourceSlices()
	for _, node := range []string{"node-a", "node-b"} {
		if _, err := c.Create(ctx, &resourcev1.ResourceSlice{
			ObjectMeta: metav1.ObjectMeta{Name: node + "-gpu"},
			Spec: resourcev1.ResourceSliceSpec{
				Driver: "gpu.example.com", NodeName: ptr.To(node), Pool: resourcev1.ResourcePool{Name: node, ResourceSliceCount: 1},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := c.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-b,spec.driver=gpu.example.com"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "node-b-gpu" {
		t.Fatalf("field selector list: %v %+v", err, l)
	}
	if _, err := c.List(ctx, metav1.ListOptions{FieldSelector: "spec.bogus=x"}); err == nil ||
		!strings.Contains(err.Error(), "field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.bogus") {
		t.Errorf("unknown field label: %v", err)
	}
}

// TestSchedulerInformersSync: upstream kube-scheduler's informers list and
// watch these kinds through typed clients; all must sync.
func TestSchedulerInformersSync(t *testing.T) {
	s := testserver.Start(t)
	f := informers.NewSharedInformerFactory(s.Client, 0)
	infs := map[string]cache.SharedIndexInformer{
		"csinodes":               f.Storage().V1().CSINodes().Informer(),
		"csidrivers":             f.Storage().V1().CSIDrivers().Informer(),
		"csistoragecapacities":   f.Storage().V1().CSIStorageCapacities().Informer(),
		"volumeattachments":      f.Storage().V1().VolumeAttachments().Informer(),
		"volumeattributesclass":  f.Storage().V1().VolumeAttributesClasses().Informer(),
		"storageclasses":         f.Storage().V1().StorageClasses().Informer(),
		"resourceclaims":         f.Resource().V1().ResourceClaims().Informer(),
		"resourceslices":         f.Resource().V1().ResourceSlices().Informer(),
		"deviceclasses":          f.Resource().V1().DeviceClasses().Informer(),
		"devicetaintrules":       f.Resource().V1().DeviceTaintRules().Informer(),
		"persistentvolumes":      f.Core().V1().PersistentVolumes().Informer(),
		"persistentvolumeclaims": f.Core().V1().PersistentVolumeClaims().Informer(),
		"nodes":                  f.Core().V1().Nodes().Informer(),
		"pods":                   f.Core().V1().Pods().Informer(),
		"namespaces":             f.Core().V1().Namespaces().Informer(),
		"services":               f.Core().V1().Services().Informer(),
		"hpav2":                  f.Autoscaling().V2().HorizontalPodAutoscalers().Informer(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f.Start(ctx.Done())
	defer f.Shutdown()
	for name, inf := range infs {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			t.Errorf("informer for %s never synced", name)
		}
	}
	// A CSINode created after the sync reaches the informer through its watch.
	if _, err := s.Client.StorageV1().CSINodes().Create(context.Background(), &storageCSINode, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "CSINode in the informer", func() bool {
		_, ok, _ := infs["csinodes"].GetStore().GetByKey(storageCSINode.Name)
		return ok
	})
}
