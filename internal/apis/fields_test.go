package apis

import (
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func resourceFor(t *testing.T, gvr schema.GroupVersionResource) *Resource {
	t.Helper()
	r, ok := NewRegistry(All()).Lookup(gvr.Group, gvr.Version, gvr.Resource)
	if !ok {
		t.Fatalf("%s not served", gvr)
	}
	return r
}

// keys are the labels a kind accepts: those of its field set for a zero object.
func keys(r *Resource) map[string]bool {
	k := map[string]bool{}
	if r.FieldSet != nil {
		for l := range r.FieldSet(r.New()) {
			k[l] = true
		}
	}
	return k
}

func TestFieldSelectorLabelsMatchUpstream(t *testing.T) {
	for _, c := range []struct {
		gvr  schema.GroupVersionResource
		want []string // beyond metadata.name and, when namespaced, metadata.namespace
	}{
		{schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"}, []string{"spec.signerName"}},
		// The Node authorizer lets a node list its requests by spec.nodeName.
		{schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "podcertificaterequests"}, []string{"spec.signerName", "spec.podName", "spec.nodeName"}},
		{schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"}, []string{
			"regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "regarding.apiVersion",
			"regarding.resourceVersion", "regarding.fieldPath", "reason", "reportingController", "source", "type"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "events"}, []string{
			"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
			"involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
			"reason", "reportingComponent", "source", "type"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, []string{
			"spec.nodeName", "spec.host", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
			"spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, []string{"spec.unschedulable"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, []string{"status.phase"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, []string{"type"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "services"}, []string{"spec.clusterIP", "spec.type"}},
		{schema.GroupVersionResource{Version: "v1", Resource: "replicationcontrollers"}, []string{"status.replicas"}},
		{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, []string{"status.successful"}},
		// apps/v1 registers no field-label conversion: metadata only.
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, nil},
		{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, nil},
		// Cluster-scoped kinds without their own conversion accept metadata.namespace.
		{schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}, []string{"metadata.namespace"}},
		{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, []string{"metadata.namespace"}},
	} {
		r := resourceFor(t, c.gvr)
		got := keys(r)
		want := map[string]bool{}
		for _, l := range c.want {
			want[l] = true
		}
		for l := range want {
			if !got[l] {
				t.Errorf("%s: field label %s missing", c.gvr, l)
			}
		}
		for l := range got {
			if !want[l] {
				t.Errorf("%s: field label %s is not upstream's", c.gvr, l)
			}
		}
	}
}

func TestFieldSetValues(t *testing.T) {
	csrs := resourceFor(t, schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"})
	csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: "example.com/x"}}
	if !fields.OneTermEqualSelector("spec.signerName", "example.com/x").Matches(csrs.FieldSet(csr)) {
		t.Errorf("CSR field set %v", csrs.FieldSet(csr))
	}

	evs := resourceFor(t, schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"})
	ev := &eventsv1.Event{
		Regarding:           corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "ns", UID: "u1"},
		Reason:              "Started",
		Type:                "Normal",
		ReportingController: "kubelet",
	}
	sel := fields.ParseSelectorOrDie("regarding.kind=Pod,regarding.name=p,regarding.uid=u1,reason=Started,type=Normal,reportingController=kubelet,source=kubelet")
	if !sel.Matches(evs.FieldSet(ev)) {
		t.Errorf("events.k8s.io field set %v does not match %s", evs.FieldSet(ev), sel)
	}
	ev.DeprecatedSource.Component = "old"
	if got := evs.FieldSet(ev)["source"]; got != "old" {
		t.Errorf("source = %q, want the deprecated source component", got)
	}

	pods := resourceFor(t, schema.GroupVersionResource{Version: "v1", Resource: "pods"})
	pod := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.2"}}}}
	if !fields.ParseSelectorOrDie("spec.host=n1,status.podIP=10.0.0.2").Matches(pods.FieldSet(pod)) {
		t.Errorf("pod field set %v", pods.FieldSet(pod))
	}

	core := resourceFor(t, schema.GroupVersionResource{Version: "v1", Resource: "events"})
	cev := &corev1.Event{ReportingController: "ctrl"}
	if got := core.FieldSet(cev); got["source"] != "ctrl" || got["reportingComponent"] != "ctrl" {
		t.Errorf("core event source/reportingComponent = %q/%q, want the reporting controller", got["source"], got["reportingComponent"])
	}
}

func TestFieldLabelErrorWording(t *testing.T) {
	for _, c := range []struct {
		gvr  schema.GroupVersionResource
		want string
	}{
		{schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"}, "field label not supported: x"},
		{schema.GroupVersionResource{Group: "events.k8s.io", Version: "v1", Resource: "events"}, "field label not supported: x"},
		{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "field label not supported: x"},
		{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, `field label "x" not supported for Job`},
		{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, `"x" is not a known field selector: only "metadata.name", "metadata.namespace"`},
		{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, `"x" is not a known field selector`},
	} {
		if got := resourceFor(t, c.gvr).FieldLabelError("x"); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.gvr, got, c.want)
		}
	}
}
