package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// statusOf decodes a Status answer.
func statusOf(t *testing.T, body string) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("not a Status: %v: %.300s", err, body)
	}
	return st
}

// TestRequestRules checks the answers upstream gives to requests that break
// its rules: the status code, reason and message are upstream's.
func TestRequestRules(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	_, err := s.Client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ns := s.URL + "/api/v1/namespaces/default"
	apps := s.URL + "/apis/apps/v1/namespaces/default"
	const noName = "the name of the object (web based on URL) was undeterminable: name must be provided"
	cases := []struct {
		name, method, url, body string
		code                    int
		reason                  metav1.StatusReason
		message                 string // exact, or a prefix when it ends in "*"
	}{
		// 1. A Scale of {} or null names no object: refused, never replicas 0.
		{"scale {}", "PUT", apps + "/deployments/web/scale", `{}`, 400, metav1.StatusReasonBadRequest, noName},
		{"scale null", "PUT", apps + "/deployments/web/scale", `null`, 400, metav1.StatusReasonBadRequest, noName},
		{"replicaset scale {}", "PUT", apps + "/replicasets/web/scale", `{}`, 400, metav1.StatusReasonBadRequest, noName},
		{"statefulset scale {}", "PUT", apps + "/statefulsets/web/scale", `{}`, 400, metav1.StatusReasonBadRequest, noName},
		{"rc scale {}", "PUT", ns + "/replicationcontrollers/web/scale", `{}`, 400, metav1.StatusReasonBadRequest, noName},
		{"scale negative", "PUT", apps + "/deployments/web/scale",
			`{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":-1}}`,
			422, metav1.StatusReasonInvalid, `Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`},

		// 2. Query parameters decoded and validated as upstream.
		{"dryRun Bogus", "POST", ns + "/configmaps?dryRun=Bogus", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dry"}}`,
			422, metav1.StatusReasonInvalid, `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Bogus"]: supported values: "All"`},
		{"update dryRun Bogus", "PUT", ns + "/configmaps/cm?dryRun=Bogus", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}`,
			422, metav1.StatusReasonInvalid, `UpdateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Bogus"]: supported values: "All"`},
		{"delete dryRun Bogus", "DELETE", ns + "/configmaps/cm?dryRun=Bogus", ``,
			422, metav1.StatusReasonInvalid, `DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Bogus"]: supported values: "All"`},
		{"fieldValidation bogus", "POST", ns + "/configmaps?fieldValidation=Bogus", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv"}}`,
			422, metav1.StatusReasonInvalid, `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Bogus": supported values: "", "Ignore", "Strict", "Warn"`},
		{"patch force without apply", "PATCH", ns + "/configmaps/cm?force=true", `{}`,
			422, metav1.StatusReasonInvalid, `PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch`},
		{"limit abc", "GET", ns + "/configmaps?limit=abc", ``, 400, metav1.StatusReasonBadRequest, `strconv.ParseInt: parsing "abc": invalid syntax`},
		{"timeoutSeconds abc", "GET", ns + "/configmaps?timeoutSeconds=abc", ``, 400, metav1.StatusReasonBadRequest, `strconv.ParseInt: parsing "abc": invalid syntax`},
		{"resourceVersionMatch alone", "GET", ns + "/configmaps?resourceVersionMatch=NotOlderThan", ``, 422, metav1.StatusReasonInvalid,
			`ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided`},
		{"bad continue", "GET", ns + "/configmaps?limit=1&continue=%21%21", ``, 400, metav1.StatusReasonBadRequest,
			`invalid continue token: continue key is not valid: illegal base64 data at input byte 0`},
		{"continue with resourceVersion", "GET", ns + "/configmaps?limit=1&resourceVersion=5&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiJjbSJ9",
			``, 400, metav1.StatusReasonBadRequest, `specifying resource version is not allowed when using continue`},
		{"watch with resourceVersionMatch only", "GET", ns + "/configmaps?watch=true&resourceVersionMatch=NotOlderThan", ``, 422, metav1.StatusReasonInvalid,
			`ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided`},

		// 3. A body naming another object than the URL: 400, not 404.
		{"put other name", "PUT", ns + "/configmaps/cm", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`,
			400, metav1.StatusReasonBadRequest, "the name of the object (other) does not match the name on the URL (cm)"},
		{"put other name, missing object", "PUT", ns + "/configmaps/missing", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}`,
			400, metav1.StatusReasonBadRequest, "the name of the object (other) does not match the name on the URL (missing)"},
		{"put other namespace", "PUT", ns + "/configmaps/cm", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"kube-system"}}`,
			400, metav1.StatusReasonBadRequest, "the namespace of the provided object does not match the namespace sent on the request"},

		// 4. An Eviction must name the URL's pod.
		{"eviction without name", "POST", ns + "/pods/p/eviction", `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"namespace":"default"}}`,
			400, metav1.StatusReasonBadRequest, "name in URL does not match name in Eviction object"},
		{"eviction other name", "POST", ns + "/pods/p/eviction", `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"q","namespace":"default"}}`,
			400, metav1.StatusReasonBadRequest, "name in URL does not match name in Eviction object"},
		{"eviction dryRun Bogus", "POST", ns + "/pods/p/eviction?dryRun=Bogus", `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p","namespace":"default"}}`,
			422, metav1.StatusReasonInvalid, `CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ["Bogus"]: supported values: "All"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := "application/json"
			switch {
			case c.body == "":
				ct = ""
			case c.method == "PATCH":
				ct = "application/merge-patch+json"
			}
			code, body := do(t, c.method, c.url, ct, c.body)
			st := statusOf(t, body)
			if code != c.code || st.Code != int32(c.code) || st.Reason != c.reason {
				t.Fatalf("got %d %s %q, want %d %s", code, st.Reason, st.Message, c.code, c.reason)
			}
			if msg, prefix := strings.CutSuffix(c.message, "*"); (prefix && !strings.HasPrefix(st.Message, msg)) || (!prefix && st.Message != c.message) {
				t.Errorf("message %q, want %q", st.Message, c.message)
			}
		})
	}

	// Nothing above changed or deleted anything.
	d, err := s.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 2 {
		t.Errorf("deployment replicas after refused scales: %v %v, want 2", err, d.Spec.Replicas)
	}
	if _, err := s.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Errorf("pod after refused evictions: %v", err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm", metav1.GetOptions{}); err != nil {
		t.Errorf("configmap after refused delete: %v", err)
	}
	for _, name := range []string{"dry", "fv", "other"} {
		if _, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{}); err == nil {
			t.Errorf("configmap %s was stored by a refused request", name)
		}
	}
}

// TestWatchParamIsUpstreamBool checks that watch= is read as upstream reads
// booleans: anything but "false" or "0" asks for a watch.
func TestWatchParamIsUpstreamBool(t *testing.T) {
	s := testserver.Start(t)
	for v, watch := range map[string]bool{"notabool": true, "1": true, "false": false, "0": false} {
		code, body := do(t, "GET", fmt.Sprintf("%s/api/v1/namespaces?watch=%s&timeoutSeconds=1", s.URL, v), "", "")
		if code != http.StatusOK {
			t.Fatalf("watch=%s: %d %s", v, code, body)
		}
		if got := strings.HasPrefix(body, `{"type":"ADDED"`); got != watch {
			t.Errorf("watch=%s: answered as a watch %v, want %v: %.200s", v, got, watch, body)
		}
	}
}
