package podautoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func policies(sel autoscalingv2.ScalingPolicySelect, ps ...autoscalingv2.HPAScalingPolicy) autoscalingv2.HPAScalingRules {
	return autoscalingv2.HPAScalingRules{SelectPolicy: &sel, Policies: ps, StabilizationWindowSeconds: ptr.To[int32](0)}
}

func pods(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: n, PeriodSeconds: period}
}

func percent(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: n, PeriodSeconds: period}
}

func TestScaleUpLimit(t *testing.T) {
	tests := []struct {
		name    string
		current int32
		events  []scaleEvent
		rules   autoscalingv2.HPAScalingRules
		want    int32
	}{
		{"defaults pick the larger: 4 pods", 1, nil, policies(autoscalingv2.MaxChangePolicySelect, pods(4, 15), percent(100, 15)), 5},
		{"defaults pick the larger: 100 %", 10, nil, policies(autoscalingv2.MaxChangePolicySelect, pods(4, 15), percent(100, 15)), 20},
		{"min picks the smaller", 10, nil, policies(autoscalingv2.MinChangePolicySelect, pods(4, 15), percent(100, 15)), 14},
		{"disabled", 10, nil, policies(autoscalingv2.DisabledPolicySelect, pods(4, 15)), 10},
		{"percent rounds up", 3, nil, policies(autoscalingv2.MaxChangePolicySelect, percent(10, 60)), 4},
		{"recent scale-ups count against the period", 6, []scaleEvent{{change: 3, at: t0.Add(-10 * time.Second)}},
			policies(autoscalingv2.MaxChangePolicySelect, pods(4, 60)), 7},
		{"older scale-ups do not", 6, []scaleEvent{{change: 3, at: t0.Add(-61 * time.Second)}},
			policies(autoscalingv2.MaxChangePolicySelect, pods(4, 60)), 10},
	}
	for _, tt := range tests {
		if got := scaleUpLimit(tt.current, tt.events, tt.rules, t0); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestScaleDownLimit(t *testing.T) {
	tests := []struct {
		name    string
		current int32
		events  []scaleEvent
		rules   autoscalingv2.HPAScalingRules
		want    int32
	}{
		{"default: 100 %", 10, nil, policies(autoscalingv2.MaxChangePolicySelect, percent(100, 15)), 0},
		{"max picks the lower limit", 10, nil, policies(autoscalingv2.MaxChangePolicySelect, pods(2, 60), percent(50, 60)), 5},
		{"min picks the higher limit", 10, nil, policies(autoscalingv2.MinChangePolicySelect, pods(2, 60), percent(50, 60)), 8},
		{"disabled", 10, nil, policies(autoscalingv2.DisabledPolicySelect, pods(2, 60)), 10},
		{"percent rounds down", 3, nil, policies(autoscalingv2.MaxChangePolicySelect, percent(10, 60)), 2},
		{"recent scale-downs count", 8, []scaleEvent{{change: 2, at: t0.Add(-30 * time.Second)}},
			policies(autoscalingv2.MaxChangePolicySelect, pods(2, 60)), 8},
	}
	for _, tt := range tests {
		if got := scaleDownLimit(tt.current, tt.events, tt.rules, t0); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestStabilize(t *testing.T) {
	b := behaviorRules(&autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp:   &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)},
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](300)},
	}, defaultDownscaleWindow)
	recs := []recommendation{
		{replicas: 8, at: t0.Add(-400 * time.Second)}, // outside both windows
		{replicas: 6, at: t0.Add(-200 * time.Second)}, // in the down window
		{replicas: 4, at: t0.Add(-30 * time.Second)},  // in both
	}
	tests := []struct {
		name             string
		current, desired int32
		want             int32
		wantReason       string
	}{
		{"down to the highest of the down window", 6, 2, 6, "ScaleDownStabilized"},
		{"partly down", 7, 2, 6, "ScaleDownStabilized"},
		{"up to the lowest of the up window", 3, 9, 4, "ScaleUpStabilized"},
		{"unchanged", 5, 5, 5, "ScaleUpStabilized"},
	}
	for _, tt := range tests {
		got, reason, _, out := stabilize(append([]recommendation(nil), recs...), tt.current, tt.desired, b, t0)
		if got != tt.want || reason != tt.wantReason {
			t.Errorf("%s: got %d %s, want %d %s", tt.name, got, reason, tt.want, tt.wantReason)
		}
		// The sample older than both windows is dropped, the new one kept.
		if len(out) != 3 || out[len(out)-1].replicas != tt.desired {
			t.Errorf("%s: recommendations after: %+v", tt.name, out)
		}
	}
}

func TestLimitByRules(t *testing.T) {
	tests := []struct {
		current, desired, min, max int32
		want                       int32
		reason                     string
	}{
		{2, 3, 1, 10, 3, "DesiredWithinRange"},
		{2, 20, 1, 10, 4, "ScaleUpLimit"},
		{10, 30, 1, 12, 12, "TooManyReplicas"},
		{3, 0, 2, 10, 2, "TooFewReplicas"},
	}
	for _, tt := range tests {
		got, reason, _ := limitByRules(tt.current, tt.desired, tt.min, tt.max)
		if got != tt.want || reason != tt.reason {
			t.Errorf("%+v: got %d %s", tt, got, reason)
		}
	}
}

// TestNormalizeDownscaleWindow: without behavior, a scale down waits for
// the downscale window, taking the highest recommendation in it.
func TestNormalizeDownscaleWindow(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	h := newHistory(clk, 5*time.Minute)
	h.start("ns/a", 5)
	l := limits{current: 5, desired: 2, min: 1, max: 10}
	if v := h.normalize("ns/a", l); v.replicas != 5 || v.ableReason != "ScaleDownStabilized" {
		t.Fatalf("at once: %+v", v)
	}
	clk.Step(3 * time.Minute)
	l.desired = 3
	if v := h.normalize("ns/a", l); v.replicas != 5 {
		t.Fatalf("within the window: %+v", v)
	}
	clk.Step(2*time.Minute + time.Second)
	// The first samples (5 and 2) have left the window; 3 remains.
	l.desired = 1
	if v := h.normalize("ns/a", l); v.replicas != 3 {
		t.Fatalf("after the window: %+v", v)
	}
}

// TestNormalizeWithBehavior: policies bound a scale up over their period,
// and the scale-down window holds a scale down.
func TestNormalizeWithBehavior(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	h := newHistory(clk, 5*time.Minute)
	b := behaviorRules(&autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp:   &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{pods(2, 60)}},
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](15)},
	}, h.downscaleWindow)
	h.start("ns/a", 1)
	v := h.normalizeWithBehavior("ns/a", b, limits{current: 1, desired: 8, min: 1, max: 10})
	if v.replicas != 3 || !v.limited || v.limitReason != "ScaleUpLimit" {
		t.Fatalf("first step: %+v", v)
	}
	h.recordScale("ns/a", b, 1, 3)
	clk.Step(30 * time.Second)
	if v := h.normalizeWithBehavior("ns/a", b, limits{current: 3, desired: 8, min: 1, max: 10}); v.replicas != 3 {
		t.Fatalf("same period: %+v", v)
	}
	clk.Step(31 * time.Second)
	if v := h.normalizeWithBehavior("ns/a", b, limits{current: 3, desired: 8, min: 1, max: 10}); v.replicas != 5 {
		t.Fatalf("next period: %+v", v)
	}
	h.recordScale("ns/a", b, 3, 5)
	clk.Step(time.Second)
	v = h.normalizeWithBehavior("ns/a", b, limits{current: 5, desired: 1, min: 1, max: 10})
	if v.replicas != 5 || v.ableReason != "ScaleDownStabilized" {
		t.Fatalf("down within the window: %+v", v)
	}
	clk.Step(16 * time.Second)
	v = h.normalizeWithBehavior("ns/a", b, limits{current: 5, desired: 1, min: 1, max: 10})
	if v.replicas != 1 || v.limited {
		t.Fatalf("down after the window: %+v", v)
	}
}

func TestBehaviorRulesDefaults(t *testing.T) {
	r := behaviorRules(nil, 5*time.Minute)
	if *r.up.StabilizationWindowSeconds != 0 || *r.down.StabilizationWindowSeconds != 300 ||
		len(r.up.Policies) != 2 || len(r.down.Policies) != 1 || *r.up.SelectPolicy != autoscalingv2.MaxChangePolicySelect {
		t.Errorf("defaults: %+v", r)
	}
}
