package namespace

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func condition(ns *corev1.Namespace, t corev1.NamespaceConditionType) *corev1.NamespaceCondition {
	for i := range ns.Status.Conditions {
		if ns.Status.Conditions[i].Type == t {
			return &ns.Status.Conditions[i]
		}
	}
	return nil
}

// A pod held by a finalizer keeps a Terminating namespace alive; the
// namespace says so in its deletion conditions, which turn False once the
// finalizer is gone, and then the namespace goes away.
func TestDeletionConditionsReportFinalizedContent(t *testing.T) {
	ts := testserver.Start(t)
	c := ts.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dyn, err := dynamic.NewForConfig(ts.Config)
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(c, 0)
	ctrl := New(c, dyn, f, slog.New(slog.DiscardHandler))
	f.Start(ctx.Done())
	defer func() { cancel(); f.Shutdown() }()
	done := make(chan struct{})
	go func() { defer close(done); ctrl.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "held"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Finalizers: []string{"example.com/hold"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	if _, err := c.CoreV1().Pods("held").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	want := map[corev1.NamespaceConditionType]struct {
		status          corev1.ConditionStatus
		reason, message string
	}{
		corev1.NamespaceDeletionDiscoveryFailure: {corev1.ConditionFalse, "ResourcesDiscovered", "All resources successfully discovered"},
		corev1.NamespaceDeletionGVParsingFailure: {corev1.ConditionFalse, "ParsedGroupVersions", "All legacy kube types successfully parsed"},
		corev1.NamespaceDeletionContentFailure:   {corev1.ConditionFalse, "ContentDeleted", "All content successfully deleted, may be waiting on finalization"},
		corev1.NamespaceContentRemaining:         {corev1.ConditionTrue, "SomeResourcesRemain", "Some resources are remaining: pods. has 1 resource instances"},
		corev1.NamespaceFinalizersRemaining:      {corev1.ConditionTrue, "SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"},
	}
	var ns *corev1.Namespace
	matches := func() bool {
		ns, err = c.CoreV1().Namespaces().Get(ctx, "held", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for typ, w := range want {
			got := condition(ns, typ)
			if got == nil || got.Status != w.status || got.Reason != w.reason || got.Message != w.message {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(15 * time.Second)
	for !matches() {
		if time.Now().After(deadline) {
			t.Fatalf("deletion conditions: %+v", ns.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("phase %q", ns.Status.Phase)
	}

	// Release the pod: the namespace is emptied and removed.
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := c.CoreV1().Pods("held").Patch(ctx, "p", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		_, err := c.CoreV1().Namespaces().Get(ctx, "held", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("namespace not removed after its content was released")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The report turns each kind of failure into its True condition and the
// rest into their False variants, and rewrites nothing that is unchanged.
func TestApplyConditions(t *testing.T) {
	r := newDeletionReport()
	r.deleteErrs = append(r.deleteErrs, errString("b failed"), errString("a failed"))
	var st corev1.NamespaceStatus
	t0 := metav1.NewTime(time.Unix(100, 0))
	if !r.applyConditions(&st, t0) {
		t.Fatal("first apply reported no change")
	}
	if len(st.Conditions) != 5 {
		t.Fatalf("conditions: %+v", st.Conditions)
	}
	cf := st.Conditions[2]
	if cf.Type != corev1.NamespaceDeletionContentFailure || cf.Status != corev1.ConditionTrue || cf.Reason != "ContentDeletionFailed" ||
		cf.Message != "Failed to delete all resource types, 2 remaining: a failed, b failed" {
		t.Fatalf("content failure: %+v", cf)
	}
	if r.applyConditions(&st, metav1.NewTime(time.Unix(200, 0))) {
		t.Fatal("unchanged report rewrote the conditions")
	}
	if !newDeletionReport().applyConditions(&st, metav1.NewTime(time.Unix(300, 0))) {
		t.Fatal("recovery not applied")
	}
	for _, c := range st.Conditions {
		if c.Status != corev1.ConditionFalse {
			t.Fatalf("after recovery: %+v", c)
		}
	}
	if st.Conditions[2].LastTransitionTime.Unix() != 300 || st.Conditions[0].LastTransitionTime.Unix() != 100 {
		t.Fatalf("transition times: %+v", st.Conditions)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
