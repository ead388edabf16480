package apiserver_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// startAPFServer runs a server with priority and fairness on a tiny
// concurrency limit: tokens name users; "admin" is in system:masters and
// "scheduler" is system:kube-scheduler.
func startAPFServer(t *testing.T) *testserver.Server {
	t.Helper()
	lookup := func(token string) (*authn.User, bool) {
		switch token {
		case "admin":
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		case "scheduler":
			return &authn.User{Name: "system:kube-scheduler", Groups: []string{"system:authenticated"}}, true
		}
		return &authn.User{Name: token, Groups: []string{"system:authenticated"}}, true
	}
	return testserver.StartWith(t, testserver.Options{
		Authenticator: authn.NewBearerToken(lookup),
		FlowControl:   apiserver.FlowControlConfig{Enabled: true, MaxRequestsInFlight: 10, RequestWaitLimit: 300 * time.Millisecond},
	})
}

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestPriorityAndFairnessProtectsComponents(t *testing.T) {
	s := startAPFServer(t)
	ctx := context.Background()
	admin := s.ClientWithToken("admin")
	fc := admin.FlowcontrolV1()

	globalDefault, err := fc.FlowSchemas().Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	level, err := fc.PriorityLevelConfigurations().Get(ctx, "global-default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The request's classification is in its headers, by UID.
	resp := get(t, s.URL+"/api/v1/namespaces/default/configmaps", "alice")
	if resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID") != string(globalDefault.UID) ||
		resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID") != string(level.UID) {
		t.Fatalf("headers %v, want global-default's UIDs %s, %s", resp.Header, globalDefault.UID, level.UID)
	}

	// Shrink global-default's queues (the user's own configuration, kept by
	// autoupdate "false") so that one client's flood overflows them.
	level.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] = "false"
	level.Spec.Limited.LimitResponse.Queuing = &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 5}
	if _, err := fc.PriorityLevelConfigurations().Update(ctx, level, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// One user floods global-default (one seat here) while the scheduler
	// (workload-high) keeps working.
	var ok, rejected, badRetry atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/namespaces/default/configmaps", nil)
				req.Header.Set("Authorization", "Bearer flood")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok.Add(1)
				case http.StatusTooManyRequests:
					rejected.Add(1)
					if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "Too many requests, please try again later.") {
						badRetry.Add(1)
					}
					time.Sleep(10 * time.Millisecond) // leave the two cores some air

				}
			}
		}()
	}
	var worst time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		resp := get(t, s.URL+"/api/v1/pods", "scheduler")
		if resp == nil || resp.StatusCode != http.StatusOK {
			t.Errorf("scheduler request %d: %v", i, resp)
		}
		worst = max(worst, time.Since(start))
		if resp := get(t, s.URL+"/api/v1/nodes", "admin"); resp == nil || resp.StatusCode != http.StatusOK {
			t.Errorf("admin request %d: %v", i, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("flood: %d served, %d rejected; scheduler worst %v", ok.Load(), rejected.Load(), worst)
	if rejected.Load() == 0 || ok.Load() == 0 {
		t.Fatalf("flood: %d served, %d rejected; want both", ok.Load(), rejected.Load())
	}
	if badRetry.Load() > 0 {
		t.Fatalf("%d rejections without Retry-After or upstream's message", badRetry.Load())
	}
	if worst > 2*time.Second {
		t.Fatalf("scheduler's slowest request took %v", worst)
	}
}

func TestFlowControlConfigurationObjects(t *testing.T) {
	s := startAPFServer(t)
	ctx := context.Background()
	fc := s.ClientWithToken("admin").FlowcontrolV1()

	fss, err := fc.FlowSchemas().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fss.Items) != 11 {
		t.Fatalf("%d flow schemas, want upstream's 11", len(fss.Items))
	}
	pls, err := fc.PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil || len(pls.Items) != 8 {
		t.Fatalf("%d priority levels (%v), want upstream's 8", len(pls.Items), err)
	}

	// Dangling: found for defaults, true for a schema naming no level.
	testserver.Eventually(t, "global-default Dangling=False", func() bool {
		fs, err := fc.FlowSchemas().Get(ctx, "global-default", metav1.GetOptions{})
		return err == nil && dangling(fs) == "False/Found"
	})
	orphan := &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "nowhere"},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects:         []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "bob"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}},
			}},
		},
	}
	created, err := fc.FlowSchemas().Create(ctx, orphan, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.MatchingPrecedence != 1000 {
		t.Errorf("matchingPrecedence defaulted to %d, want 1000", created.Spec.MatchingPrecedence)
	}
	testserver.Eventually(t, "orphan Dangling=True", func() bool {
		fs, err := fc.FlowSchemas().Get(ctx, "orphan", metav1.GetOptions{})
		return err == nil && dangling(fs) == "True/NotFound"
	})

	// Validation as upstream.
	bad := orphan.DeepCopy()
	bad.Name, bad.Spec.MatchingPrecedence = "bad", 1
	if _, err := fc.FlowSchemas().Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "only the schema named 'exempt' may have matchingPrecedence 1") {
		t.Errorf("precedence 1: %v", err)
	}
	catchAll, _ := fc.FlowSchemas().Get(ctx, "catch-all", metav1.GetOptions{})
	catchAll.Spec.MatchingPrecedence = 9000
	if _, err := fc.FlowSchemas().Update(ctx, catchAll, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "spec of 'catch-all' must equal the fixed value") {
		t.Errorf("changing the mandatory catch-all: %v", err)
	}

	// A suggested object edited with autoupdate "false" keeps the edit; one
	// left at "true" is restored by the next ensure.
	edit := func(name, autoupdate string) {
		t.Helper()
		fs, err := fc.FlowSchemas().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fs.Spec.MatchingPrecedence = 7777
		fs.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] = autoupdate
		if _, err := fc.FlowSchemas().Update(ctx, fs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	edit("service-accounts", "false")
	edit("global-default", "true")
	if err := s.API.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if fs, _ := fc.FlowSchemas().Get(ctx, "service-accounts", metav1.GetOptions{}); fs.Spec.MatchingPrecedence != 7777 {
		t.Errorf("service-accounts (autoupdate false) reverted to %d", fs.Spec.MatchingPrecedence)
	}
	if fs, _ := fc.FlowSchemas().Get(ctx, "global-default", metav1.GetOptions{}); fs.Spec.MatchingPrecedence != 9900 {
		t.Errorf("global-default (autoupdate true) left at %d", fs.Spec.MatchingPrecedence)
	}
}

func dangling(fs *flowcontrolv1.FlowSchema) string {
	for _, c := range fs.Status.Conditions {
		if c.Type == flowcontrolv1.FlowSchemaConditionDangling {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}
