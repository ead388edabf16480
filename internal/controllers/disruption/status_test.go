package disruption

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	scalefake "k8s.io/client-go/scale/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type podOpt func(*corev1.Pod)

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }

func terminating(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} }

func unowned(p *corev1.Pod) { p.OwnerReferences = nil }

func ownedBy(kind, apiVersion, name, uid string) podOpt {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name,
			UID: types.UID(uid), Controller: ptr.To(true)}}
	}
}

// pod is a ready pod controlled by the ReplicaSet "rs" unless opts say otherwise.
func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "a"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	ownedBy("ReplicaSet", "apps/v1", "rs", "rs-uid")(p)
	for _, o := range opts {
		o(p)
	}
	return p
}

func pods(n int, opts ...podOpt) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = pod(string(rune('a'+i)), opts...)
	}
	return out
}

func budget(minAvailable, maxUnavailable *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "pdb", Namespace: "ns", Generation: 3},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: minAvailable, MaxUnavailable: maxUnavailable,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}},
	}
}

func intOrStr(s string) *intstr.IntOrString { v := intstr.Parse(s); return &v }

// fixedScale resolves every controller reference to replicas of its own.
func fixedScale(replicas map[types.UID]int32) scaleFinder {
	return func(_ context.Context, ref *metav1.OwnerReference, _ string) (types.UID, int32, bool, error) {
		n, ok := replicas[ref.UID]
		return ref.UID, n, ok, nil
	}
}

func TestStatusComputation(t *testing.T) {
	scale := fixedScale(map[types.UID]int32{"rs-uid": 5, "other-uid": 2})
	mixed := append(pods(3), pod("x", ownedBy("ReplicaSet", "apps/v1", "other", "other-uid")))
	cases := []struct {
		name                                string
		min, max                            *intstr.IntOrString
		pods                                []*corev1.Pod
		expected, desired, healthy, allowed int32
		wantReason                          string
		wantErr                             bool
	}{
		// A plain minAvailable counts the selected pods, not the scale.
		{name: "minAvailable int", min: intOrStr("2"), pods: pods(3), expected: 3, desired: 2, healthy: 3, allowed: 1, wantReason: policyv1.SufficientPodsReason},
		{name: "minAvailable int not met", min: intOrStr("4"), pods: pods(3), expected: 3, desired: 4, healthy: 3, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "minAvailable int counts unowned pods", min: intOrStr("1"), pods: pods(2, unowned), expected: 2, desired: 1, healthy: 2, allowed: 1, wantReason: policyv1.SufficientPodsReason},
		// 50% of scale 5 rounds up to 3.
		{name: "minAvailable percent", min: intOrStr("50%"), pods: pods(5), expected: 5, desired: 3, healthy: 5, allowed: 2, wantReason: policyv1.SufficientPodsReason},
		{name: "maxUnavailable int", max: intOrStr("1"), pods: pods(5), expected: 5, desired: 4, healthy: 5, allowed: 1, wantReason: policyv1.SufficientPodsReason},
		// 30% of 5 rounds up to 2 unavailable.
		{name: "maxUnavailable percent", max: intOrStr("30%"), pods: pods(5), expected: 5, desired: 3, healthy: 5, allowed: 2, wantReason: policyv1.SufficientPodsReason},
		{name: "maxUnavailable above scale", max: intOrStr("9"), pods: pods(5), expected: 5, desired: 0, healthy: 5, allowed: 5, wantReason: policyv1.SufficientPodsReason},
		// Expected pods come from the scale, not from the pods seen.
		{name: "scale beyond pods", max: intOrStr("1"), pods: pods(2), expected: 5, desired: 4, healthy: 2, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "scales summed per controller", max: intOrStr("0"), pods: mixed, expected: 7, desired: 7, healthy: 4, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "no matching pods", min: intOrStr("0"), pods: nil, expected: 0, desired: 0, healthy: 0, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "no matching pods percent", max: intOrStr("50%"), pods: nil, expected: 0, desired: 0, healthy: 0, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "pods not ready", min: intOrStr("1"), pods: append(pods(1), pod("y", notReady), pod("z", notReady)), expected: 3, desired: 1, healthy: 1, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "terminating pods not healthy", min: intOrStr("1"), pods: append(pods(2), pod("y", terminating)), expected: 3, desired: 1, healthy: 2, allowed: 1, wantReason: policyv1.SufficientPodsReason},
		{name: "neither field", pods: pods(3), expected: 0, desired: 0, healthy: 3, allowed: 0, wantReason: policyv1.InsufficientPodsReason},
		{name: "unresolvable controller", max: intOrStr("1"), pods: pods(1, ownedBy("ReplicaSet", "apps/v1", "gone", "gone-uid")), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pdb := budget(tc.min, tc.max)
			expected, desired, _, err := expectedAndDesired(context.Background(), pdb, tc.pods, scale)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error for a pod whose controller cannot be found")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			disrupted, _, _ := liveDisruptedPods(pdb, tc.pods, now)
			st := newStatus(pdb, countHealthy(tc.pods, disrupted, now), desired, expected, disrupted)
			if st.ExpectedPods != tc.expected || st.DesiredHealthy != tc.desired || st.CurrentHealthy != tc.healthy || st.DisruptionsAllowed != tc.allowed {
				t.Errorf("expected/desired/healthy/allowed = %d/%d/%d/%d, want %d/%d/%d/%d", st.ExpectedPods, st.DesiredHealthy,
					st.CurrentHealthy, st.DisruptionsAllowed, tc.expected, tc.desired, tc.healthy, tc.allowed)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %d, want 3", st.ObservedGeneration)
			}
			c := findCondition(st.Conditions)
			if c == nil || c.Reason != tc.wantReason || c.ObservedGeneration != 3 ||
				(c.Status == metav1.ConditionTrue) != (tc.wantReason == policyv1.SufficientPodsReason) {
				t.Errorf("condition = %+v, want reason %s", c, tc.wantReason)
			}
		})
	}
}

func TestUnmanagedPodsReported(t *testing.T) {
	ps := append(pods(2), pod("loose", unowned))
	expected, _, unmanaged, err := expectedAndDesired(context.Background(), budget(intOrStr("50%"), nil), ps,
		fixedScale(map[types.UID]int32{"rs-uid": 2}))
	if err != nil || expected != 2 || len(unmanaged) != 1 || unmanaged[0] != "loose" {
		t.Fatalf("expected=%d unmanaged=%v err=%v; want 2, [loose], nil", expected, unmanaged, err)
	}
}

func TestDisruptedPodsExpire(t *testing.T) {
	pdb := budget(intOrStr("1"), nil)
	pdb.Status.DisruptedPods = map[string]metav1.Time{
		"a":    {Time: now.Add(-30 * time.Second)}, // evicted recently: not healthy, kept
		"b":    {Time: now.Add(-3 * time.Minute)},  // never deleted: dropped, healthy again
		"c":    {Time: now.Add(-10 * time.Second)}, // being deleted: dropped
		"gone": {Time: now.Add(-10 * time.Second)}, // pod no longer exists: dropped
	}
	ps := []*corev1.Pod{pod("a"), pod("b"), pod("c", terminating), pod("d")}
	kept, expired, recheck := liveDisruptedPods(pdb, ps, now)
	if _, ok := kept["a"]; len(kept) != 1 || !ok {
		t.Fatalf("kept = %v, want only a", kept)
	}
	if len(expired) != 1 || expired[0] != "b" {
		t.Errorf("expired = %v, want [b]", expired)
	}
	if want := now.Add(90 * time.Second); !recheck.Equal(want) {
		t.Errorf("recheck = %v, want %v", recheck, want)
	}
	// a (disrupted) and c (terminating) are not healthy.
	if n := countHealthy(ps, kept, now); n != 2 {
		t.Errorf("healthy = %d, want 2", n)
	}
}

func TestFailedStatus(t *testing.T) {
	pdb := budget(intOrStr("1"), nil)
	pdb.Status = newStatus(pdb, 3, 1, 3, nil)
	st := failedStatus(pdb, errTest("boom"))
	c := findCondition(st.Conditions)
	if st.DisruptionsAllowed != 0 || c == nil || c.Reason != policyv1.SyncFailedReason || c.Status != metav1.ConditionFalse || c.Message != "boom" {
		t.Fatalf("status = %+v, want no disruptions and a SyncFailed condition", st)
	}
	if st.CurrentHealthy != 3 {
		t.Errorf("fail-safe status lost the other fields: %+v", st)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// TestFinders resolves controller references through the caches the way
// upstream counts them: a Deployment's ReplicaSets as the Deployment.
func TestFinders(t *testing.T) {
	idx := func(objs ...any) cache.Indexer {
		i := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
		for _, o := range objs {
			if err := i.Add(o); err != nil {
				t.Fatal(err)
			}
		}
		return i
	}
	meta := func(name, uid string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}
	}
	deploy := &appsv1.Deployment{ObjectMeta: meta("web", "d-uid"), Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](6)}}
	rsOfDeploy := &appsv1.ReplicaSet{ObjectMeta: meta("web-1", "rs1-uid"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2)}}
	rsOfDeploy.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "d-uid", Controller: ptr.To(true)}}
	rsOfDeploy2 := rsOfDeploy.DeepCopy()
	rsOfDeploy2.Name, rsOfDeploy2.UID = "web-2", "rs2-uid"
	plainRS := &appsv1.ReplicaSet{ObjectMeta: meta("plain", "rs-uid"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](4)}}
	rc := &corev1.ReplicationController{ObjectMeta: meta("rc", "rc-uid"), Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](3)}}
	ss := &appsv1.StatefulSet{ObjectMeta: meta("db", "ss-uid"), Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](7)}}
	f := &finders{
		rcs:          listerscorev1.NewReplicationControllerLister(idx(rc)),
		replicaSets:  listersappsv1.NewReplicaSetLister(idx(rsOfDeploy, rsOfDeploy2, plainRS)),
		deployments:  listersappsv1.NewDeploymentLister(idx(deploy)),
		statefulSets: listersappsv1.NewStatefulSetLister(idx(ss)),
	}
	cases := []struct {
		name     string
		opt      podOpt
		uid      types.UID
		replicas int32
		found    bool
	}{
		{"deployment via replicaset", ownedBy("ReplicaSet", "apps/v1", "web-1", "rs1-uid"), "d-uid", 6, true},
		{"replicaset", ownedBy("ReplicaSet", "apps/v1", "plain", "rs-uid"), "rs-uid", 4, true},
		{"replicationcontroller", ownedBy("ReplicationController", "v1", "rc", "rc-uid"), "rc-uid", 3, true},
		{"statefulset", ownedBy("StatefulSet", "apps/v1", "db", "ss-uid"), "ss-uid", 7, true},
		{"uid mismatch", ownedBy("StatefulSet", "apps/v1", "db", "old-uid"), "", 0, false},
		{"unknown kind", ownedBy("Widget", "example.com/v1", "w", "w-uid"), "", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := metav1.GetControllerOf(pod("p", tc.opt))
			uid, n, found, err := f.find(context.Background(), ref, "ns")
			if err != nil || uid != tc.uid || n != tc.replicas || found != tc.found {
				t.Fatalf("find = %q, %d, %v, %v; want %q, %d, %v", uid, n, found, err, tc.uid, tc.replicas, tc.found)
			}
		})
	}
	// Pods of two ReplicaSets of one Deployment count the Deployment once.
	ps := []*corev1.Pod{pod("a", ownedBy("ReplicaSet", "apps/v1", "web-1", "rs1-uid")),
		pod("b", ownedBy("ReplicaSet", "apps/v1", "web-2", "rs2-uid")), pod("c", ownedBy("ReplicaSet", "apps/v1", "plain", "rs-uid"))}
	n, _, err := controllersScale(context.Background(), ps, f.find)
	if err != nil || n != 10 {
		t.Fatalf("scale = %d, %v; want 6 (deployment) + 4 (replicaset)", n, err)
	}
}

// TestScaleSubresourceFinder counts a custom controller through its scale
// subresource.
func TestScaleSubresourceFinder(t *testing.T) {
	gv := schema.GroupVersion{Group: "example.com", Version: "v1"}
	mapper := apimeta.NewDefaultRESTMapper([]schema.GroupVersion{gv})
	mapper.Add(gv.WithKind("Widget"), apimeta.RESTScopeNamespace)
	client := &scalefake.FakeScaleClient{}
	client.AddReactor("get", "widgets", func(action clienttesting.Action) (bool, runtime.Object, error) {
		name := action.(clienttesting.GetAction).GetName()
		if name != "w" {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "example.com", Resource: "widgets"}, name)
		}
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "w", UID: "w-uid"},
			Spec: autoscalingv1.ScaleSpec{Replicas: 5}}, nil
	})
	f := &finders{scales: &scaleSubresource{mapper: mapper, client: client}}
	uid, n, found, err := f.find(context.Background(), &metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "w-uid"}, "ns")
	if err != nil || uid != "w-uid" || n != 5 || !found {
		t.Fatalf("find = %q, %d, %v, %v; want w-uid, 5, true", uid, n, found, err)
	}
	if _, _, found, err := f.find(context.Background(), &metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "gone", UID: "x"}, "ns"); found || err != nil {
		t.Fatalf("missing widget: found=%v err=%v, want not found", found, err)
	}
}
