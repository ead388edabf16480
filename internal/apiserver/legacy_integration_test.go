package apiserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/testserver"
)

func TestComponentStatuses(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	list, err := s.Client.CoreV1().ComponentStatuses().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cs := range list.Items {
		names = append(names, cs.Name)
	}
	if strings.Join(names, ",") != "controller-manager,etcd-0,scheduler" {
		t.Errorf("components %v", names)
	}
	etcd, err := s.Client.CoreV1().ComponentStatuses().Get(ctx, "etcd-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := corev1.ComponentCondition{Type: corev1.ComponentHealthy, Status: corev1.ConditionTrue, Message: "ok"}
	if len(etcd.Conditions) != 1 || etcd.Conditions[0] != want {
		t.Errorf("etcd-0 conditions %+v", etcd.Conditions)
	}
	if _, err := s.Client.CoreV1().ComponentStatuses().Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("unknown component: %v", err)
	}
	one, err := s.Client.CoreV1().ComponentStatuses().List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=etcd-0"})
	if err != nil || len(one.Items) != 1 {
		t.Errorf("field selector: %v %v", one, err)
	}

	// kubectl's table, and the deprecation warning on every answer.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/componentstatuses", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if w := resp.Header.Get("Warning"); w != `299 - "v1 ComponentStatus is deprecated in v1.19+"` {
		t.Errorf("warning %q", w)
	}
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	if strings.Join(cols, ",") != "Name,Status,Message,Error" || len(table.Rows) != 3 {
		t.Fatalf("table columns %v, %d rows", cols, len(table.Rows))
	}
	if row := table.Rows[1].Cells; row[0] != "etcd-0" || row[1] != "Healthy" || row[2] != "ok" || row[3] != "" {
		t.Errorf("etcd-0 row %v", row)
	}

	// Read-only: no other verb.
	resp, err = http.Post(s.URL+"/api/v1/componentstatuses", "application/json", strings.NewReader(`{"metadata":{"name":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST componentstatuses: %d", resp.StatusCode)
	}
}

// ProbeComponent reads a component's /healthz as upstream's probe does.
func TestProbeComponent(t *testing.T) {
	healthy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer healthy.Close()
	sick := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "leader election lost", http.StatusInternalServerError)
	}))
	defer sick.Close()
	port := func(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }
	for _, tc := range []struct {
		name string
		port int
		want corev1.ConditionStatus
		msg  string
	}{
		{"healthy", port(healthy), corev1.ConditionTrue, "ok"},
		{"sick", port(sick), corev1.ConditionFalse, "leader election lost\n"},
		{"down", 1, corev1.ConditionFalse, `Get "https://127.0.0.1:1/healthz": dial tcp 127.0.0.1:1: connect: connection refused`},
	} {
		h := apiserver.ProbeComponent(tc.port)(context.Background())
		if h.Status != tc.want || h.Message != tc.msg {
			t.Errorf("%s: %+v", tc.name, h)
		}
	}
}

func TestLegacyBindings(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	c := s.Client
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	created, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	post := func(b *corev1.Binding) error {
		return c.CoreV1().RESTClient().Post().Namespace("default").Resource("bindings").Body(b).Do(ctx).Error()
	}
	bind := func(name, node string) *corev1.Binding {
		return &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: node}}
	}

	// Answers as upstream v1.37.2 gives them.
	stale := bind("p", "n1")
	stale.ResourceVersion = "1"
	err = post(stale)
	if want := `Operation cannot be fulfilled on pods "p": StorageError: invalid object, Code: 4, Key: /registry/pods/default/p, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: ` + created.ResourceVersion; !apierrors.IsConflict(err) || err.Error() != want {
		t.Errorf("binding at another resourceVersion: %v", err)
	}
	var st *apierrors.StatusError
	if err := post(bind("p", "")); !errors.As(err, &st) || st.ErrStatus.Code != 500 || st.ErrStatus.Message != "target.name: Required value" {
		t.Errorf("binding without a node: %v", err)
	}
	if err := post(bind("", "n1")); !apierrors.IsBadRequest(err) || err.Error() != "Name parameter required." {
		t.Errorf("binding without a name: %v", err)
	}
	if err := post(bind("ghost", "n1")); !apierrors.IsNotFound(err) {
		t.Errorf("binding of a missing pod: %v", err)
	}
	// The pods/binding subresource checks the UID; the legacy resource
	// drops it with the other system fields.
	other := bind("p", "n1")
	other.UID = "not-the-pod"
	if err := c.CoreV1().Pods("default").Bind(ctx, other, metav1.CreateOptions{}); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "Precondition failed: UID in precondition: not-the-pod") {
		t.Errorf("pods/binding with another UID: %v", err)
	}

	good := bind("p", "n1")
	good.UID = "ignored"
	good.Annotations = map[string]string{"example.com/why": "test"}
	if err := post(good); err != nil {
		t.Fatal(err)
	}
	got, err := c.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "n1" || got.Annotations["example.com/why"] != "test" {
		t.Errorf("bound pod: node %q annotations %v", got.Spec.NodeName, got.Annotations)
	}
	scheduled := false
	for _, cond := range got.Status.Conditions {
		scheduled = scheduled || (cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionTrue)
	}
	if !scheduled {
		t.Errorf("no PodScheduled condition: %+v", got.Status.Conditions)
	}

	err = post(bind("p", "n2"))
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1"`) {
		t.Errorf("second binding: %v", err)
	}
	// Create-only.
	if err := c.CoreV1().RESTClient().Get().Namespace("default").Resource("bindings").Do(ctx).Error(); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("GET bindings: %v", err)
	}
}
