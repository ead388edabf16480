package job

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestMatchSuccessPolicy(t *testing.T) {
	idx := func(is ...int) map[int]bool {
		m := map[int]bool{}
		for _, i := range is {
			m[i] = true
		}
		return m
	}
	cases := []struct {
		name      string
		rules     []batchv1.SuccessPolicyRule
		succeeded map[int]bool
		want      string
	}{
		{"indexes all succeeded", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0-2")}}, idx(0, 1, 2, 4), "Matched rules at index 0"},
		{"indexes missing one", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0-2")}}, idx(0, 2), ""},
		// Only the rule's own indexes count: 1 and 3 of "1-4", not 5.
		{"count within indexes", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("1-4"), SucceededCount: ptr.To[int32](3)}}, idx(1, 3, 5), ""},
		{"count within indexes met", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("1-4"), SucceededCount: ptr.To[int32](2)}}, idx(1, 3, 5), "Matched rules at index 0"},
		{"count alone", []batchv1.SuccessPolicyRule{{SucceededCount: ptr.To[int32](2)}}, idx(7, 9), "Matched rules at index 0"},
		{"second rule", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("3")}, {SucceededCount: ptr.To[int32](1)}}, idx(0), "Matched rules at index 1"},
		{"malformed rule skipped", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("x")}}, idx(0), ""},
		{"nothing succeeded", []batchv1.SuccessPolicyRule{{SucceededCount: ptr.To[int32](0)}}, idx(), ""},
	}
	for _, tc := range cases {
		msg, ok := matchSuccessPolicy(&batchv1.SuccessPolicy{Rules: tc.rules}, 10, tc.succeeded)
		if msg != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: got (%q, %v), want %q", tc.name, msg, ok, tc.want)
		}
	}
}

func TestParseIndexesRoundTrip(t *testing.T) {
	got := parseIndexes("0-2,4,7-8,20", 10)
	if s := formatIndexes(got); s != "0-2,4,7-8" {
		t.Fatalf("parsed %q as %q (indexes past completions dropped)", "0-2,4,7-8,20", s)
	}
}

type harness struct {
	t      *testing.T
	ctx    context.Context
	client *fake.Clientset
	c      *Controller
}

func newHarness(t *testing.T) *harness {
	ctx, cancel := context.WithCancel(context.Background())
	client := fake.NewClientset()
	// The fake does not implement generateName.
	n := 0
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod); p.Name == "" {
			n++
			p.Name = fmt.Sprintf("%s%d", p.GenerateName, n)
			p.UID = types.UID(p.Name)
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	factory.WaitForCacheSync(ctx.Done())
	return &harness{t: t, ctx: ctx, client: client, c: c}
}

func (h *harness) createJob(j *batchv1.Job) {
	h.t.Helper()
	if _, err := h.client.BatchV1().Jobs("default").Create(h.ctx, j, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.waitFor("job in cache", func() bool { _, err := h.c.jobLister.Jobs("default").Get(j.Name); return err == nil })
}

// pod adds a pod owned by job j, as the kubelet would have left it.
func (h *harness) pod(j *batchv1.Job, name string, index int, phase corev1.PodPhase, deleting bool) {
	h.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: "default", UID: types.UID("pod-" + name), Labels: j.Spec.Template.Labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID, Controller: ptr.To(true)}},
	}, Status: corev1.PodStatus{Phase: phase}}
	if index >= 0 {
		p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: strconv.Itoa(index)}
	}
	if deleting {
		now := metav1.Now()
		p.DeletionTimestamp = &now
	}
	if _, err := h.client.CoreV1().Pods("default").Create(h.ctx, p, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.waitFor("pod in cache", func() bool { _, err := h.c.podLister.Pods("default").Get(name); return err == nil })
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sync runs one sync once the job cache has caught up with the server.
func (h *harness) sync(name string) *batchv1.Job {
	h.t.Helper()
	h.waitFor("job cache", func() bool {
		live, err1 := h.client.BatchV1().Jobs("default").Get(h.ctx, name, metav1.GetOptions{})
		cached, err2 := h.c.jobLister.Jobs("default").Get(name)
		return err1 == nil && err2 == nil && live.ResourceVersion == cached.ResourceVersion
	})
	if err := h.c.sync(h.ctx, "default/"+name); err != nil {
		h.t.Fatal(err)
	}
	j, err := h.client.BatchV1().Jobs("default").Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

func conditionTypes(j *batchv1.Job) []batchv1.JobConditionType {
	var out []batchv1.JobConditionType
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out = append(out, c.Type)
		}
	}
	return out
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == t {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func testJob(name string, completions, parallelism int32, indexed bool) *batchv1.Job {
	labels := map[string]string{batchv1.JobNameLabel: name}
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("job-" + name)},
		Spec: batchv1.JobSpec{
			Completions: &completions, Parallelism: &parallelism, BackoffLimit: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			}},
		},
	}
	if indexed {
		j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	}
	return j
}

func TestSuccessPolicyTerminatesRemainingPods(t *testing.T) {
	h := newHarness(t)
	j := testJob("sp", 5, 3, true)
	j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0")}}}
	h.createJob(j)
	h.pod(j, "sp-0", 0, corev1.PodSucceeded, false)
	h.pod(j, "sp-1", 1, corev1.PodRunning, false)
	h.pod(j, "sp-2", 2, corev1.PodRunning, true) // already terminating

	got := h.sync("sp")
	met := condition(got, batchv1.JobSuccessCriteriaMet)
	if met == nil || met.Reason != batchv1.JobReasonSuccessPolicy || met.Message != "Matched rules at index 0" {
		t.Fatalf("SuccessCriteriaMet condition %+v", met)
	}
	if condition(got, batchv1.JobComplete) != nil || got.Status.CompletionTime != nil {
		t.Fatal("Complete set while pods are still terminating")
	}
	if got.Status.Active != 0 || *got.Status.Terminating != 2 || got.Status.CompletedIndexes != "0" {
		t.Fatalf("interim status: active=%d terminating=%d completed=%q", got.Status.Active, *got.Status.Terminating, got.Status.CompletedIndexes)
	}
	if _, err := h.client.CoreV1().Pods("default").Get(h.ctx, "sp-1", metav1.GetOptions{}); err == nil {
		t.Fatal("running pod sp-1 was not deleted")
	}

	// The terminating pod ends as failed and goes away: the job
	// completes, and the killed pods are not failures.
	h.waitFor("sp-1 gone from cache", func() bool { _, err := h.c.podLister.Pods("default").Get("sp-1"); return err != nil })
	p, _ := h.client.CoreV1().Pods("default").Get(h.ctx, "sp-2", metav1.GetOptions{})
	p.Status.Phase = corev1.PodFailed
	if _, err := h.client.CoreV1().Pods("default").UpdateStatus(h.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("sp-2 failed in cache", func() bool {
		p, err := h.c.podLister.Pods("default").Get("sp-2")
		return err == nil && p.Status.Phase == corev1.PodFailed
	})
	got = h.sync("sp")
	done := condition(got, batchv1.JobComplete)
	if done == nil || done.Reason != batchv1.JobReasonSuccessPolicy || done.Message != met.Message {
		t.Fatalf("Complete condition %+v", done)
	}
	if types := conditionTypes(got); len(types) != 2 || types[0] != batchv1.JobSuccessCriteriaMet || types[1] != batchv1.JobComplete {
		t.Fatalf("conditions %v, want SuccessCriteriaMet then Complete", types)
	}
	if got.Status.CompletionTime == nil || got.Status.Succeeded != 1 || got.Status.Failed != 0 ||
		*got.Status.Terminating != 0 || *got.Status.Ready != 0 || got.Status.Active != 0 {
		t.Fatalf("final status %+v", got.Status)
	}
}

func TestSuccessPolicyCountRule(t *testing.T) {
	h := newHarness(t)
	j := testJob("cnt", 4, 4, true)
	j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededCount: ptr.To[int32](2)}}}
	h.createJob(j)
	h.pod(j, "cnt-3", 3, corev1.PodSucceeded, false)
	if got := h.sync("cnt"); condition(got, batchv1.JobSuccessCriteriaMet) != nil {
		t.Fatal("one succeeded index met a rule needing two")
	}
	h.waitFor("pods for the other indexes", func() bool {
		pods, _ := h.c.podLister.List(labels.Everything())
		return len(pods) == 4
	})
	h.pod(j, "cnt-1", 1, corev1.PodSucceeded, false)
	got := h.sync("cnt")
	if condition(got, batchv1.JobSuccessCriteriaMet) == nil || condition(got, batchv1.JobComplete) != nil || got.Status.CompletedIndexes != "1,3" {
		t.Fatalf("after two indexes: %v, completed %q", conditionTypes(got), got.Status.CompletedIndexes)
	}
	h.waitFor("remaining pods deleted", func() bool {
		pods, _ := h.c.podLister.List(labels.Everything())
		return len(pods) == 2
	})
	if got = h.sync("cnt"); condition(got, batchv1.JobComplete) == nil || got.Status.Succeeded != 2 {
		t.Fatalf("once the pods are gone: %v, succeeded %d", conditionTypes(got), got.Status.Succeeded)
	}
}

// Ordinary completions also go through SuccessCriteriaMet first, with
// the CompletionsReached reason on both conditions.
func TestCompletionSetsSuccessCriteriaMetFirst(t *testing.T) {
	h := newHarness(t)
	j := testJob("plain", 1, 1, false)
	h.createJob(j)
	h.pod(j, "plain-a", -1, corev1.PodSucceeded, false)
	got := h.sync("plain")
	types := conditionTypes(got)
	if len(types) != 2 || types[0] != batchv1.JobSuccessCriteriaMet || types[1] != batchv1.JobComplete {
		t.Fatalf("conditions %v, want SuccessCriteriaMet then Complete", types)
	}
	for _, c := range got.Status.Conditions {
		if c.Reason != batchv1.JobReasonCompletionsReached || c.Message != "Reached expected number of succeeded pods" {
			t.Fatalf("condition %+v", c)
		}
	}
}

// A failing job records FailureTarget and waits for its pods to end
// before Failed.
func TestFailureWaitsForTerminatingPods(t *testing.T) {
	h := newHarness(t)
	j := testJob("bad", 2, 2, false)
	j.Spec.BackoffLimit = ptr.To[int32](0)
	h.createJob(j)
	h.pod(j, "bad-a", -1, corev1.PodFailed, false)
	h.pod(j, "bad-b", -1, corev1.PodRunning, true)
	got := h.sync("bad")
	if ft := condition(got, batchv1.JobFailureTarget); ft == nil || ft.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("FailureTarget %+v", ft)
	}
	if condition(got, batchv1.JobFailed) != nil {
		t.Fatal("Failed set while a pod is terminating")
	}
	if err := h.client.CoreV1().Pods("default").Delete(h.ctx, "bad-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("bad-b gone", func() bool { _, err := h.c.podLister.Pods("default").Get("bad-b"); return err != nil })
	got = h.sync("bad")
	if f := condition(got, batchv1.JobFailed); f == nil || f.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("Failed %+v", f)
	}
}
