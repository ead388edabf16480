package podautoscaler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

type fixture struct {
	t       *testing.T
	client  *fake.Clientset
	scales  *fakeScales
	metrics *fakeMetrics
	events  *record.FakeRecorder
	clock   *clocktesting.FakeClock
	c       *Controller
	factory informers.SharedInformerFactory
}

func newFixture(t *testing.T, clk clock.Clock) *fixture {
	t.Helper()
	f := &fixture{t: t, client: fake.NewClientset(), scales: newFakeScales(), metrics: &fakeMetrics{}, events: record.NewFakeRecorder(100)}
	if fc, ok := clk.(*clocktesting.FakeClock); ok {
		f.clock = fc
	}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: "apps", Version: "v1"}})
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	f.factory = informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, f.factory, Config{Scales: f.scales, Mapper: mapper, Metrics: f.metrics, Clock: clk},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.c.recorder = f.events
	return f
}

// start runs the informers (not the controller's workers) and waits for
// them to sync.
func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(func() { cancel(); f.factory.Shutdown() })
	f.factory.Start(ctx.Done())
	f.factory.WaitForCacheSync(ctx.Done())
}

func (f *fixture) addPods(now time.Time, names ...string) {
	f.t.Helper()
	for _, n := range names {
		if _, err := f.client.CoreV1().Pods("default").Create(context.Background(), pod(n, 1000, now), metav1.CreateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
	controllertest.WaitFor(f.t, "pods in the informer", func() bool {
		ps, _ := f.c.calc.pods.List(labelsAll())
		return len(ps) >= len(names)
	})
}

func (f *fixture) createHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	f.t.Helper()
	if _, err := f.client.AutoscalingV2().HorizontalPodAutoscalers(h.Namespace).Create(context.Background(), h, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// reconcile runs one step on the stored HPA and returns it afterwards.
func (f *fixture) reconcile(name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	f.t.Helper()
	ctx := context.Background()
	h, err := f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	rerr := f.c.reconcile(ctx, "default/"+name, h)
	h, err = f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return h, rerr
}

// expectEvent takes the next recorded event and checks it.
func (f *fixture) expectEvent(want string) {
	f.t.Helper()
	select {
	case got := <-f.events.Events:
		if got != want {
			f.t.Fatalf("event %q, want %q", got, want)
		}
	default:
		f.t.Fatalf("no event, want %q", want)
	}
}

func (f *fixture) expectNoEvent() {
	f.t.Helper()
	select {
	case got := <-f.events.Events:
		f.t.Fatalf("unexpected event %q", got)
	default:
	}
}

func cpuHPA(name string, target int32, b *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(target)}}}},
			Behavior: b,
		},
	}
}

func condition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) string {
	for _, c := range h.Status.Conditions {
		if c.Type == typ {
			return string(c.Status) + " " + c.Reason
		}
	}
	return "<none>"
}

func checkConditions(t *testing.T, h *autoscalingv2.HorizontalPodAutoscaler, able, active, limited string) {
	t.Helper()
	if got := condition(h, autoscalingv2.AbleToScale); got != able {
		t.Errorf("AbleToScale = %s, want %s", got, able)
	}
	if got := condition(h, autoscalingv2.ScalingActive); got != active {
		t.Errorf("ScalingActive = %s, want %s", got, active)
	}
	if got := condition(h, autoscalingv2.ScalingLimited); got != limited {
		t.Errorf("ScalingLimited = %s, want %s", got, limited)
	}
}

// TestScaleOutThenInAfterWindow: CPU above target scales a Deployment out
// at once; CPU below target scales it in only once the scale-down
// stabilization window has passed.
func TestScaleOutThenInAfterWindow(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	f := newFixture(t, clk)
	f.start()
	f.addPods(t0, "a", "b")
	f.scales.put(deployments, "default", "web", 2, "app=web")
	f.metrics.set(map[string]int64{"a": 1000, "b": 1000}, t0)
	f.createHPA(cpuHPA("web", 50, &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](15)}}))

	h, err := f.reconcile("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.scales.replicas(deployments, "default", "web"); got != 4 {
		t.Fatalf("scaled to %d, want 4", got)
	}
	f.expectEvent("Normal SuccessfulRescale New size: 4; reason: cpu resource utilization (percentage of request) above target")
	checkConditions(t, h, "True SucceededRescale", "True ValidMetricFound", "False DesiredWithinRange")
	st := h.Status
	if st.CurrentReplicas != 2 || st.DesiredReplicas != 4 || st.LastScaleTime == nil || !st.LastScaleTime.Time.Equal(t0) {
		t.Errorf("status %+v", st)
	}
	if len(st.CurrentMetrics) != 1 || st.CurrentMetrics[0].Resource == nil ||
		*st.CurrentMetrics[0].Resource.Current.AverageUtilization != 100 || st.CurrentMetrics[0].Resource.Current.AverageValue.String() != "1" {
		t.Errorf("current metrics %+v", st.CurrentMetrics)
	}

	// Load drops on the four pods: within the window, the earlier
	// recommendation of 4 holds.
	f.addPods(t0, "c", "d")
	clk.Step(5 * time.Second)
	f.metrics.set(map[string]int64{"a": 100, "b": 100, "c": 100, "d": 100}, clk.Now())
	h, err = f.reconcile("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.scales.replicas(deployments, "default", "web"); got != 4 {
		t.Fatalf("scaled to %d within the window", got)
	}
	f.expectNoEvent()
	checkConditions(t, h, "True ScaleDownStabilized", "True ValidMetricFound", "False DesiredWithinRange")
	if h.Status.CurrentReplicas != 4 || h.Status.DesiredReplicas != 4 || !h.Status.LastScaleTime.Time.Equal(t0) {
		t.Errorf("status within the window %+v", h.Status)
	}

	clk.Step(16 * time.Second)
	f.metrics.set(map[string]int64{"a": 100, "b": 100, "c": 100, "d": 100}, clk.Now())
	h, err = f.reconcile("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.scales.replicas(deployments, "default", "web"); got != 1 {
		t.Fatalf("scaled to %d after the window, want 1", got)
	}
	f.expectEvent("Normal SuccessfulRescale New size: 1; reason: All metrics below target")
	checkConditions(t, h, "True SucceededRescale", "True ValidMetricFound", "False DesiredWithinRange")
	if h.Status.DesiredReplicas != 1 || !h.Status.LastScaleTime.Time.Equal(clk.Now()) {
		t.Errorf("status after the window %+v", h.Status)
	}
}

// TestScaleUpLimitedByMax: the maximum bounds a scale up, and the
// condition says so.
func TestScaleUpLimitedByMax(t *testing.T) {
	f := newFixture(t, clocktesting.NewFakeClock(t0))
	f.start()
	f.addPods(t0, "a", "b")
	f.scales.put(deployments, "default", "web", 2, "app=web")
	f.metrics.set(map[string]int64{"a": 1000, "b": 1000}, t0)
	h := cpuHPA("web", 10, nil)
	h.Spec.MaxReplicas = 3
	f.createHPA(h)
	h, err := f.reconcile("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.scales.replicas(deployments, "default", "web"); got != 3 {
		t.Fatalf("scaled to %d, want 3", got)
	}
	checkConditions(t, h, "True SucceededRescale", "True ValidMetricFound", "True TooManyReplicas")
}

// TestFailures: what the HPA reports when it cannot work.
func TestFailures(t *testing.T) {
	t.Run("metrics unavailable", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.addPods(t0, "a")
		f.scales.put(deployments, "default", "web", 1, "app=web")
		f.metrics.err = errors.New("the server is currently unable to handle the request")
		f.createHPA(cpuHPA("web", 50, nil))
		h, err := f.reconcile("web")
		if err == nil {
			t.Fatal("no error")
		}
		f.expectEvent("Warning FailedGetResourceMetric failed to get cpu utilization: unable to get metrics for resource cpu: " +
			"unable to fetch metrics from resource metrics API: the server is currently unable to handle the request")
		f.expectEvent("Warning FailedComputeMetricsReplicas failed to compute desired number of replicas based on listed metrics for " +
			"Deployment/default/web: invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: " +
			"failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: " +
			"the server is currently unable to handle the request")
		checkConditions(t, h, "True SucceededGetScale", "False FailedGetResourceMetric", "<none>")
		if h.Status.CurrentReplicas != 1 || f.scales.replicas(deployments, "default", "web") != 1 {
			t.Errorf("status %+v", h.Status)
		}
	})
	t.Run("custom metrics", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.scales.put(deployments, "default", "web", 1, "app=web")
		h := cpuHPA("web", 50, nil)
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType}}}}
		f.createHPA(h)
		h, err := f.reconcile("web")
		if err == nil {
			t.Fatal("no error")
		}
		checkConditions(t, h, "True SucceededGetScale", "False FailedGetPodsMetric", "<none>")
		for _, c := range h.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && !strings.Contains(c.Message, "no custom metrics API (custom.metrics.k8s.io) registered") {
				t.Errorf("message %q", c.Message)
			}
		}
	})
	t.Run("missing target", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.createHPA(cpuHPA("web", 50, nil))
		h, err := f.reconcile("web")
		if err == nil {
			t.Fatal("no error")
		}
		f.expectEvent(`Warning FailedGetScale deployments.apps "web" not found`)
		checkConditions(t, h, "False FailedGetScale", "<none>", "<none>")
	})
	t.Run("unknown kind", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		h := cpuHPA("web", 50, nil)
		h.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w"}
		f.createHPA(h)
		h, _ = f.reconcile("web")
		checkConditions(t, h, "False FailedGetScale", "<none>", "<none>")
	})
	t.Run("scaled to zero", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.scales.put(deployments, "default", "web", 0, "app=web")
		f.createHPA(cpuHPA("web", 50, nil))
		h, err := f.reconcile("web")
		if err != nil {
			t.Fatal(err)
		}
		checkConditions(t, h, "True SucceededGetScale", "False ScalingDisabled", "<none>")
		if f.metrics.calls != 0 || f.scales.replicas(deployments, "default", "web") != 0 {
			t.Error("a target scaled to zero was autoscaled")
		}
	})
	t.Run("below min", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.scales.put(deployments, "default", "web", 1, "app=web")
		h := cpuHPA("web", 50, nil)
		h.Spec.MinReplicas = ptr.To[int32](3)
		f.createHPA(h)
		if _, err := f.reconcile("web"); err != nil {
			t.Fatal(err)
		}
		f.expectEvent("Normal SuccessfulRescale New size: 3; reason: Current number of replicas below Spec.MinReplicas")
	})
	t.Run("rescale refused", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.scales.put(deployments, "default", "web", 1, "app=web")
		f.scales.failing = errors.New("quota exceeded")
		h := cpuHPA("web", 50, nil)
		h.Spec.MinReplicas = ptr.To[int32](2)
		f.createHPA(h)
		h, err := f.reconcile("web")
		if err == nil {
			t.Fatal("no error")
		}
		f.expectEvent("Warning FailedRescale New size: 2; reason: Current number of replicas below Spec.MinReplicas; error: quota exceeded")
		checkConditions(t, h, "False FailedUpdateScale", "<none>", "<none>")
	})
	t.Run("two HPAs on the same pods", func(t *testing.T) {
		f := newFixture(t, clocktesting.NewFakeClock(t0))
		f.start()
		f.addPods(t0, "a")
		f.scales.put(deployments, "default", "web", 1, "app=web")
		f.metrics.set(map[string]int64{"a": 500}, t0)
		f.createHPA(cpuHPA("web", 50, nil))
		other := cpuHPA("web2", 50, nil)
		f.createHPA(other)
		if _, err := f.reconcile("web"); err != nil {
			t.Fatal(err)
		}
		h, err := f.reconcile("web2")
		if err == nil {
			t.Fatal("no error")
		}
		checkConditions(t, h, "True SucceededGetScale", "False AmbiguousSelector", "<none>")
	})
}

// TestRunScalesOnAdd: the running controller picks a new HPA up from its
// informer and scales the target, and comes back every resync period.
func TestRunScalesOnAdd(t *testing.T) {
	now := time.Now()
	f := newFixture(t, clock.RealClock{})
	f.c.resync = 100 * time.Millisecond
	f.scales.put(deployments, "default", "web", 1, "app=web")
	f.metrics.set(map[string]int64{"a": 1000}, now)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	controllertest.Run(t, ctx, f.factory, f.c.Run)
	if !cache.WaitForCacheSync(ctx.Done(), f.c.synced...) {
		t.Fatal("informers did not sync")
	}
	f.addPods(now, "a")
	f.createHPA(cpuHPA("web", 50, nil))
	controllertest.WaitFor(t, "scale to 2", func() bool { return f.scales.replicas(deployments, "default", "web") == 2 })
	// A second pod as busy as the first shows up: a later resync, with no
	// change to the HPA, proposes 4.
	f.metrics.set(map[string]int64{"a": 1000, "b": 1000}, now)
	f.addPods(now, "b")
	controllertest.WaitFor(t, "a later resync to scale to 4", func() bool { return f.scales.replicas(deployments, "default", "web") == 4 })
}
