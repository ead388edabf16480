package apiserver_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// The expected answers in this file are upstream kube-apiserver v1.37.2's,
// as the differential test (test/differential) observed them.

const (
	noRoute     = "the server could not find the requested resource"
	noMethod    = "the server does not allow this method on the requested resource"
	unknownBody = "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
)

// TestUpstreamRoutingAndDecoding checks the answers to requests upstream
// refuses before any object is read: unrouted paths, methods a path does
// not take, bodies that do not decode, and malformed resource versions.
func TestUpstreamRoutingAndDecoding(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ns := "/api/v1/namespaces/default"
	cases := []struct {
		name, method, path, contentType, body string
		code                                  int
		reason                                metav1.StatusReason // "" for a plain-text answer
		message                               string              // exact, or a prefix when it ends in "*"
	}{
		{"unknown resource", "GET", ns + "/bogusresources", "", "", 404, metav1.StatusReasonNotFound, noRoute},
		{"unknown version of a served group", "GET", "/apis/apps/v9/deployments", "", "", 404, metav1.StatusReasonNotFound, noRoute},
		{"unknown group version document", "GET", "/apis/apps/v9", "", "", 404, metav1.StatusReasonNotFound, noRoute},
		{"unknown group", "GET", "/apis/bogus.example.com/v1/things", "", "", 404, "", "404 page not found\n"},
		{"unknown group document", "GET", "/apis/bogus.example.com", "", "", 404, "", "404 page not found\n"},
		{"cluster-scoped resource in a namespace", "GET", ns + "/nodes", "", "", 404, metav1.StatusReasonNotFound, noRoute},
		{"namespaced object without namespace", "GET", "/api/v1/configmaps/cm", "", "", 404, metav1.StatusReasonNotFound, noRoute},
		{"unknown subresource", "GET", ns + "/configmaps/cm/status", "", "", 404, metav1.StatusReasonNotFound, noRoute},

		{"PUT on a collection", "PUT", ns + "/configmaps", "application/json", `{}`, 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"PATCH on a collection", "PATCH", ns + "/configmaps", "application/merge-patch+json", `{}`, 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"POST on an object", "POST", ns + "/configmaps/cm", "application/json", `{}`, 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"POST across namespaces", "POST", "/api/v1/configmaps", "application/json", `{}`, 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"deletecollection of namespaces", "DELETE", "/api/v1/namespaces", "", "", 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"GET namespace finalize", "GET", "/api/v1/namespaces/default/finalize", "", "", 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"PATCH namespace finalize", "PATCH", "/api/v1/namespaces/default/finalize", "application/merge-patch+json", `{}`, 405, metav1.StatusReasonMethodNotAllowed, noMethod},
		{"POST on a scale", "POST", "/apis/apps/v1/namespaces/default/deployments/web/scale", "application/json", `{}`, 405, metav1.StatusReasonMethodNotAllowed, noMethod},

		{"strict unknown field", "POST", ns + "/configmaps?fieldValidation=Strict", "application/json",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict"},"bogus":1}`,
			400, metav1.StatusReasonBadRequest, `ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus"`},
		{"another kind", "POST", ns + "/configmaps", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}`,
			400, metav1.StatusReasonBadRequest, `Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion`},
		{"another group's kind", "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"}}`,
			400, metav1.StatusReasonBadRequest, `ConfigMap in version "v1" cannot be handled as a Deployment: converting (v1.ConfigMap) to (apps.Deployment): unknown conversion`},
		{"unregistered version", "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", `{"apiVersion":"apps/v2","kind":"Deployment","metadata":{"name":"d"}}`,
			400, metav1.StatusReasonBadRequest, `Deployment in version "v2" cannot be handled as a Deployment: no kind "Deployment" is registered for version "apps/v2" in scheme "pkg/runtime/scheme.go:111"`},
		{"other version of the kind", "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", `{"apiVersion":"extensions/v1beta1","kind":"Deployment","metadata":{"name":"d"}}`,
			400, metav1.StatusReasonBadRequest, `the API version in the data (extensions/v1beta1) does not match the expected API version (apps/v1)`},
		{"wrong field type", "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":"x"}}`,
			400, metav1.StatusReasonBadRequest, `Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`},
		{"malformed quantity", "POST", ns + "/pods", "application/json",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","resources":{"requests":{"cpu":"abc"}}}]}}`,
			400, metav1.StatusReasonBadRequest, `Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`},
		{"not JSON", "POST", ns + "/configmaps", "application/json", `{not json`,
			400, metav1.StatusReasonBadRequest, `the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: invalid character 'n' looking for beginning of object key string ({not json)`},
		{"long unreadable JSON", "POST", ns + "/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"}} trailing`,
			400, metav1.StatusReasonBadRequest, `the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: invalid character 't' after top-level value ({"apiVersion":"v1","kind":"Con ...)`},
		{"bad YAML", "POST", ns + "/configmaps", "application/yaml", `a: [b`,
			400, metav1.StatusReasonBadRequest, `the object provided is unrecognized (must be of type ConfigMap): yaml: line 1: did not find expected ',' or ']' (613a205b62)`},
		{"unsupported media type", "POST", ns + "/configmaps", "text/plain", `hello`, 415, metav1.StatusReasonUnsupportedMediaType, unknownBody},
		{"unsupported media type on update", "PUT", ns + "/configmaps/cm", "text/plain", `{}`, 415, metav1.StatusReasonUnsupportedMediaType, unknownBody},
		{"unsupported patch type", "PATCH", ns + "/configmaps/cm", "application/json", `{"data":{"a":"b"}}`,
			415, metav1.StatusReasonUnsupportedMediaType, "415: Unsupported Media Type"},
		{"unsupported patch type, missing object", "PATCH", ns + "/configmaps/missing", "text/plain", `{}`,
			415, metav1.StatusReasonUnsupportedMediaType, "415: Unsupported Media Type"},
		{"update without name", "PUT", ns + "/configmaps/cm", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}`,
			400, metav1.StatusReasonBadRequest, "the name of the object (cm based on URL) was undeterminable: name must be provided"},

		{"events.k8s.io Event named as the core kind", "POST", "/apis/events.k8s.io/v1/namespaces/default/events", "application/json",
			`{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"ev","labels":{"bad key!":"v"}},"eventTime":"2026-01-01T00:00:00.000000Z",` +
				`"reportingController":"example.com/c","reportingInstance":"i","action":"Started","reason":"Started","type":"Normal","regarding":{"kind":"Pod","name":"p","namespace":"default"}}`,
			422, metav1.StatusReasonInvalid, `Event "ev" is invalid: metadata.labels: Invalid value: "bad key!": *`},

		{"list resourceVersion abc", "GET", ns + "/configmaps?resourceVersion=abc", "", "", 400, metav1.StatusReasonBadRequest,
			`invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax`},
		{"list resourceVersion -1", "GET", ns + "/configmaps?resourceVersion=-1", "", "", 400, metav1.StatusReasonBadRequest,
			`invalid resource version: resourceVersion: Invalid value: "-1": strconv.ParseUint: parsing "-1": invalid syntax`},
		{"list resourceVersion out of range", "GET", ns + "/configmaps?resourceVersion=99999999999999999999999", "", "", 400, metav1.StatusReasonBadRequest,
			`invalid resource version: resourceVersion: Invalid value: "99999999999999999999999": strconv.ParseUint: parsing "99999999999999999999999": value out of range`},
		{"deletecollection resourceVersion abc", "DELETE", ns + "/configmaps?resourceVersion=abc", "", "", 400, metav1.StatusReasonBadRequest,
			`invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := do(t, c.method, s.URL+c.path, c.contentType, c.body)
			if code != c.code {
				t.Fatalf("code %d, want %d: %.300s", code, c.code, body)
			}
			if c.reason == "" {
				if body != c.message {
					t.Errorf("body %q, want %q", body, c.message)
				}
				return
			}
			st := statusOf(t, body)
			msg, prefix := strings.CutSuffix(c.message, "*")
			if st.Reason != c.reason || (prefix && !strings.HasPrefix(st.Message, msg)) || (!prefix && st.Message != msg) {
				t.Errorf("got %s %q\nwant %s %q", st.Reason, st.Message, c.reason, c.message)
			}
		})
	}
	if code, _ := do(t, "GET", s.URL+ns+"/configmaps/cm", "", ""); code != http.StatusOK {
		t.Errorf("configmap cm gone after refused requests: %d", code)
	}
	for _, name := range []string{"strict", "s", "d", "p"} {
		if code, _ := do(t, "GET", s.URL+ns+"/configmaps/"+name, "", ""); code != http.StatusNotFound {
			t.Errorf("configmap %s stored by a refused request", name)
		}
	}
}

// TestDeleteAnswers checks what a DELETE answers: a Success Status naming
// the object for most resources, the object itself for the resources whose
// upstream registry returns it and for objects that linger.
func TestDeleteAnswers(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "dry"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}},
	} {
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	leases := s.Client.CoordinationV1().Leases("default")
	if _, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "lease"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	uid := func(get func() (metav1.Object, error)) types.UID {
		m, err := get()
		if err != nil {
			t.Fatal(err)
		}
		return m.GetUID()
	}
	plainUID := uid(func() (metav1.Object, error) { return cms.Get(ctx, "plain", metav1.GetOptions{}) })
	leaseUID := uid(func() (metav1.Object, error) { return leases.Get(ctx, "lease", metav1.GetOptions{}) })

	cases := []struct {
		name, path string
		kind       string                // of the answer
		details    *metav1.StatusDetails // of a Status answer
	}{
		{"configmap", "/api/v1/namespaces/default/configmaps/plain", "Status",
			&metav1.StatusDetails{Name: "plain", Kind: "configmaps", UID: plainUID}},
		{"lease", "/apis/coordination.k8s.io/v1/namespaces/default/leases/lease", "Status",
			&metav1.StatusDetails{Name: "lease", Group: "coordination.k8s.io", Kind: "leases", UID: leaseUID}},
		{"dry run", "/api/v1/namespaces/default/configmaps/dry?dryRun=All", "Status", nil},
		{"serviceaccount (ReturnDeletedObject)", "/api/v1/namespaces/default/serviceaccounts/sa", "ServiceAccount", nil},
		{"object with finalizers", "/api/v1/namespaces/default/configmaps/held", "ConfigMap", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := do(t, "DELETE", s.URL+c.path, "", "")
			if code != http.StatusOK {
				t.Fatalf("code %d: %.300s", code, body)
			}
			var got struct {
				Kind    string                `json:"kind"`
				Status  string                `json:"status"`
				Code    *int                  `json:"code"`
				Details *metav1.StatusDetails `json:"details"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Kind != c.kind {
				t.Fatalf("answered a %s, want a %s: %.300s", got.Kind, c.kind, body)
			}
			if c.kind != "Status" {
				return
			}
			if got.Status != metav1.StatusSuccess || got.Code != nil {
				t.Errorf("status %q code %v, want Success without a code", got.Status, got.Code)
			}
			if c.details != nil && !reflect.DeepEqual(got.Details, c.details) {
				t.Errorf("details %+v, want %+v", got.Details, c.details)
			}
		})
	}
	if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); err != nil {
		t.Errorf("dry-run delete removed the object: %v", err)
	}
	held, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil || held.DeletionTimestamp == nil {
		t.Errorf("object with finalizers: %v, deletionTimestamp %v; want it kept and marked", err, held.GetDeletionTimestamp())
	}
}

// TestNamespaceDiscoveryVerbs checks that namespaces advertise no
// deletecollection and their finalize subresource only update.
func TestNamespaceDiscoveryVerbs(t *testing.T) {
	s := testserver.Start(t)
	code, body := do(t, "GET", s.URL+"/api/v1", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1: %d %s", code, body)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"namespaces":          {"create", "delete", "get", "list", "patch", "update", "watch"},
		"namespaces/finalize": {"update"},
		"namespaces/status":   {"get", "patch", "update"},
	}
	for _, r := range list.APIResources {
		w, ok := want[r.Name]
		if !ok {
			continue
		}
		delete(want, r.Name)
		got := slices.Sorted(slices.Values(r.Verbs))
		if !slices.Equal(got, w) {
			t.Errorf("%s verbs %v, want %v", r.Name, got, w)
		}
	}
	if len(want) > 0 {
		t.Errorf("not in discovery: %s", strings.Join(slices.Sorted(maps.Keys(want)), ", "))
	}
}
