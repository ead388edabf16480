package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// flowGauge sums a priority and fairness gauge over the level's schemas.
func flowGauge(t *testing.T, name, level string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "priority_level" && l.GetValue() == level {
					sum += m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// slowReader is a client whose sockets take little data unread, so that
// the server blocks writing a large watch until the test reads it.
var slowReader = &http.Client{Transport: &http.Transport{
	DisableKeepAlives: true,
	DialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192)
		})
		if err != nil {
			return err
		}
		return serr
	}}).DialContext,
}}

func open(ctx context.Context, t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := slowReader.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type watchLine struct {
	Type   string `json:"type"`
	Object struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	} `json:"object"`
}

// startFlowServer starts a server with priority and fairness on and the
// given --max-requests-inflight, where the bearer token "admin" is a
// cluster admin and any other token the authenticated user of that name.
func startFlowServer(t *testing.T, maxInflight int) *testserver.Server {
	lookup := func(token string) (*authn.User, bool) {
		if token == "admin" {
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		}
		return &authn.User{Name: token, Groups: []string{"system:authenticated"}}, true
	}
	return testserver.StartWith(t, testserver.Options{
		Authenticator: authn.NewBearerToken(lookup),
		FlowControl:   apiserver.FlowControlConfig{Enabled: true, MaxRequestsInFlight: maxInflight, RequestWaitLimit: 15 * time.Second},
	})
}

// TestWatchHoldsSeatUntilInitialized: in a level of one seat, a WATCH
// with many initial events holds the seat while it sends them, so a
// request of the level waits until then (and no longer); initialized
// watches hold no seat; and a watch that ends before initialization
// (client gone, error) frees its seat.
func TestWatchHoldsSeatUntilInitialized(t *testing.T) {
	s := startFlowServer(t, 10)
	ctx := context.Background()
	admin := s.ClientWithToken("admin")

	// Level "tiny": one seat it can neither lend nor top up by borrowing,
	// one queue, serving users watcher and other.
	zero, one := int32(0), int32(1)
	pl, err := admin.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny"},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: &one, LendablePercent: &zero, BorrowingLimitPercent: &zero,
				LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
					Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 50}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	users := []flowcontrolv1.Subject{
		{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "watcher"}},
		{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "other"}},
	}
	if _, err := admin.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "tiny"},
			MatchingPrecedence:         100,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{Subjects: users, ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
				Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true,
			}}}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmURL := s.URL + "/api/v1/namespaces/default/configmaps"
	testserver.Eventually(t, "requests classified into tiny", func() bool {
		resp := get(t, cmURL+"?limit=1", "other")
		return resp != nil && resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID") == string(pl.UID)
	})

	// Far more initial events than the sockets between server and a
	// client that does not read can hold.
	const n = 120
	big := strings.Repeat("x", 100<<10)
	for i := range n {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)}, Data: map[string]string{"d": big}}
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const inQueue, executing = "apiserver_flowcontrol_current_inqueue_requests", "apiserver_flowcontrol_current_executing_requests"
	testserver.Eventually(t, "tiny idle", func() bool { return flowGauge(t, executing, "tiny") == 0 })

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch := open(wctx, t, cmURL+"?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan", "watcher")
	defer watch.Body.Close()
	if watch.StatusCode != http.StatusOK {
		t.Fatalf("watch: %s", watch.Status)
	}
	if got := flowGauge(t, executing, "tiny"); got != 1 {
		t.Fatalf("%v requests executing in tiny, want the initializing watch", got)
	}

	// Another request of the level queues behind the initializing watch.
	otherDone := make(chan int, 1)
	go func() {
		// No t here: the request may outlive a failing test.
		req, _ := http.NewRequest(http.MethodGet, cmURL+"/cm-000", nil)
		req.Header.Set("Authorization", "Bearer other")
		code := 0
		if resp, err := http.DefaultClient.Do(req); err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		otherDone <- code
	}()
	testserver.Eventually(t, "the request queued behind the watch", func() bool { return flowGauge(t, inQueue, "tiny") == 1 })
	select {
	case code := <-otherDone:
		t.Fatalf("request finished (%d) while the watch held the only seat", code)
	default:
	}

	// Read the initial events: once they are sent the watch frees the seat
	// and the request runs, while the watch stays open.
	dec := json.NewDecoder(watch.Body)
	added := 0
	for {
		var ev watchLine
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("after %d initial events: %v", added, err)
		}
		if ev.Type == "ADDED" {
			added++
		}
		if ev.Type == "BOOKMARK" && ev.Object.Metadata.Annotations["k8s.io/initial-events-end"] == "true" {
			break
		}
	}
	if added != n {
		t.Fatalf("%d initial events, want %d", added, n)
	}
	select {
	case code := <-otherDone:
		if code != http.StatusOK {
			t.Fatalf("queued request: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request still waiting after the watch was initialized")
	}
	events := make(chan watchLine, 16)
	go func() {
		for {
			var ev watchLine
			if dec.Decode(&ev) != nil {
				close(events)
				return
			}
			events <- ev
		}
	}()

	// Initialized watches, this one and more from a resourceVersion (no
	// initial events), hold no seat: the level keeps serving.
	list, err := admin.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w := open(wctx, t, cmURL+"?watch=1&resourceVersion="+list.ResourceVersion, "watcher")
		defer w.Body.Close()
		if w.StatusCode != http.StatusOK {
			t.Fatalf("watch from a resourceVersion: %s", w.Status)
		}
	}
	testserver.Eventually(t, "no watch holding a seat", func() bool { return flowGauge(t, executing, "tiny") == 0 })
	for i := range 5 {
		start := time.Now()
		if resp := get(t, cmURL+"/cm-001", "other"); resp == nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d beside initialized watches: %v", i, resp)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("request %d took %v beside initialized watches", i, d)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Type == "ADDED" && ev.Object.Metadata.Name == "late" {
			break
		}
	}

	// A watch whose client goes away during its initial events, and one
	// failing validation, free the seat.
	gctx, gone := context.WithCancel(ctx)
	w := open(gctx, t, cmURL+"?watch=1&resourceVersion=0", "watcher")
	if got := flowGauge(t, executing, "tiny"); got != 1 {
		t.Fatalf("%v requests executing in tiny, want the initializing watch", got)
	}
	gone()
	w.Body.Close()
	testserver.Eventually(t, "the abandoned watch's seat freed", func() bool { return flowGauge(t, executing, "tiny") == 0 })
	resp := get(t, cmURL+"?watch=1&sendInitialEvents=true", "watcher") // needs allowWatchBookmarks
	if resp == nil || resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("invalid watch: %v", resp)
	}
	if resp := get(t, cmURL+"/cm-002", "other"); resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("request after failed watches: %v", resp)
	}
	if got := flowGauge(t, executing, "tiny"); got != 0 {
		t.Fatalf("%v requests executing in tiny after the failed watches, want 0", got)
	}
}
