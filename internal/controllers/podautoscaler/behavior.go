package podautoscaler

import (
	"math"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

const (
	// defaultDownscaleWindow is upstream's
	// --horizontal-pod-autoscaler-downscale-stabilization: an HPA scales down
	// to the highest recommendation of this window.
	defaultDownscaleWindow = 5 * time.Minute
	// Without behavior, one step scales up to at most max(2×current, 4).
	scaleUpLimitFactor  = 2.0
	scaleUpLimitMinimum = 4.0
)

// recommendation is one unstabilized replica count and when it was made.
type recommendation struct {
	replicas int32
	at       time.Time
}

// scaleEvent is one rescale: how many replicas it added (or removed).
type scaleEvent struct {
	change int32
	at     time.Time
}

// verdict is what normalization decided and why: the replica count, the
// reason for the AbleToScale condition (always True here) and the
// ScalingLimited condition.
type verdict struct {
	replicas                  int32
	ableReason, ableMessage   string
	limited                   bool
	limitReason, limitMessage string
}

// limits is what bounds a recommendation.
type limits struct {
	current, desired, min, max int32
}

// history remembers, per HPA key, recent recommendations and rescales, in
// memory as upstream does: a restarted controller starts afresh.
type history struct {
	clock           clock.PassiveClock
	downscaleWindow time.Duration

	mu              sync.Mutex
	recommendations map[string][]recommendation
	scaleUps        map[string][]scaleEvent
	scaleDowns      map[string][]scaleEvent
}

func newHistory(c clock.PassiveClock, downscaleWindow time.Duration) *history {
	return &history{clock: c, downscaleWindow: downscaleWindow, recommendations: map[string][]recommendation{},
		scaleUps: map[string][]scaleEvent{}, scaleDowns: map[string][]scaleEvent{}}
}

// start seeds an HPA seen for the first time with its current size, so
// that it does not scale down before a full window of recommendations.
func (h *history) start(key string, current int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.recommendations[key]; !ok {
		h.recommendations[key] = []recommendation{{replicas: current, at: h.clock.Now()}}
	}
}

// forget drops a deleted HPA.
func (h *history) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recommendations, key)
	delete(h.scaleUps, key)
	delete(h.scaleDowns, key)
}

// normalize bounds an HPA without behavior: scale down to the highest
// recommendation of the downscale window, scale up at most to
// max(2×current, 4), stay within min and max.
func (h *history) normalize(key string, l limits) verdict {
	h.mu.Lock()
	now := h.clock.Now()
	recs := h.recommendations[key]
	stabilized := l.desired
	cutoff := now.Add(-h.downscaleWindow)
	for _, r := range recs {
		if !r.at.Before(cutoff) {
			stabilized = max(stabilized, r.replicas)
		}
	}
	h.recommendations[key] = appendRecommendation(recs, recommendation{replicas: l.desired, at: now}, cutoff)
	h.mu.Unlock()

	v := verdict{ableReason: "ReadyForNewScale", ableMessage: "recommended size matches current size"}
	if stabilized != l.desired {
		v.ableReason = "ScaleDownStabilized"
		v.ableMessage = "recent recommendations were higher than current one, applying the highest recent recommendation"
	}
	v.replicas, v.limitReason, v.limitMessage = limitByRules(l.current, stabilized, l.min, l.max)
	v.limited = v.replicas != stabilized
	return v
}

// limitByRules applies min, max and the fixed scale-up rate.
func limitByRules(current, desired, minReplicas, maxReplicas int32) (int32, string, string) {
	upLimit := int32(math.Max(scaleUpLimitFactor*float64(current), scaleUpLimitMinimum))
	maxAllowed, reason, msg := maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if maxReplicas > upLimit {
		maxAllowed, reason, msg = upLimit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	switch {
	case desired < minReplicas:
		return minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	case desired > maxAllowed:
		return maxAllowed, reason, msg
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// normalizeWithBehavior bounds an HPA with behavior: stabilization windows
// in both directions, then the scaling policies' rates, then min and max.
func (h *history) normalizeWithBehavior(key string, b rules, l limits) verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	stabilized, reason, msg, recs := stabilize(h.recommendations[key], l.current, l.desired, b, now)
	h.recommendations[key] = recs

	v := verdict{ableReason: "ReadyForNewScale", ableMessage: "recommended size matches current size"}
	if stabilized != l.desired {
		v.ableReason, v.ableMessage = reason, msg
	}
	l.desired = stabilized
	v.replicas, v.limitReason, v.limitMessage = limitByRate(l, b, h.scaleUps[key], h.scaleDowns[key], now)
	v.limited = v.replicas != stabilized
	return v
}

// stabilize keeps the recommendation between the lowest one of the
// scale-up window and the highest one of the scale-down window, starting
// from the current size. It returns the stabilized count, the condition
// reason and message if it differs, and the updated recommendations.
func stabilize(recs []recommendation, current, desired int32, b rules, now time.Time) (int32, string, string, []recommendation) {
	upCutoff := now.Add(-time.Duration(*b.up.StabilizationWindowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(*b.down.StabilizationWindowSeconds) * time.Second)
	upRec, downRec := desired, desired
	for _, r := range recs {
		if r.at.After(upCutoff) {
			upRec = min(upRec, r.replicas)
		}
		if r.at.After(downCutoff) {
			downRec = max(downRec, r.replicas)
		}
	}
	out := max(current, upRec)
	out = min(out, downRec)
	oldest := upCutoff
	if downCutoff.Before(oldest) {
		oldest = downCutoff
	}
	recs = appendRecommendation(recs, recommendation{replicas: desired, at: now}, oldest)
	if desired >= current {
		return out, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation", recs
	}
	return out, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation", recs
}

// appendRecommendation adds r, dropping recommendations older than cutoff.
func appendRecommendation(recs []recommendation, r recommendation, cutoff time.Time) []recommendation {
	kept := recs[:0]
	for _, x := range recs {
		if !x.at.Before(cutoff) {
			kept = append(kept, x)
		}
	}
	return append(kept, r)
}

// limitByRate applies the scaling policies to a change, given the
// rescales of their periods, then min and max.
func limitByRate(l limits, b rules, ups, downs []scaleEvent, now time.Time) (int32, string, string) {
	switch {
	case l.desired > l.current:
		limit := max(scaleUpLimit(l.current, ups, b.up, now), l.current)
		maxAllowed, reason, msg := l.max, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxAllowed > limit {
			maxAllowed, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if l.desired > maxAllowed {
			return maxAllowed, reason, msg
		}
	case l.desired < l.current:
		limit := min(scaleDownLimit(l.current, downs, b.down, now), l.current)
		minAllowed, reason, msg := l.min, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minAllowed < limit {
			minAllowed, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if l.desired < minAllowed {
			return minAllowed, reason, msg
		}
	}
	return l.desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// scaleUpLimit is the largest size the policies allow now: each policy
// measures from the size at the start of its period; selectPolicy picks
// the most (Max) or least (Min) permissive; Disabled allows none.
func scaleUpLimit(current int32, events []scaleEvent, r autoscalingv2.HPAScalingRules, now time.Time) int32 {
	pick, result := policyPicker(r, true)
	if pick == nil {
		return current
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(events, p.PeriodSeconds, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is the smallest size the policies allow now.
func scaleDownLimit(current int32, events []scaleEvent, r autoscalingv2.HPAScalingRules, now time.Time) int32 {
	pick, result := policyPicker(r, false)
	if pick == nil {
		return current
	}
	for _, p := range r.Policies {
		start := current + changeInPeriod(events, p.PeriodSeconds, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	return result
}

// policyPicker returns how policies' proposals combine and the starting
// value; nil when scaling in that direction is disabled. "Max" means the
// policy allowing the largest change: the highest limit going up, the
// lowest going down.
func policyPicker(r autoscalingv2.HPAScalingRules, up bool) (func(a, b int32) int32, int32) {
	sel := ptr.Deref(r.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
	if sel == autoscalingv2.DisabledPolicySelect {
		return nil, 0
	}
	largest := sel == autoscalingv2.MaxChangePolicySelect
	if up == largest {
		return func(a, b int32) int32 { return max(a, b) }, math.MinInt32
	}
	return func(a, b int32) int32 { return min(a, b) }, math.MaxInt32
}

// changeInPeriod sums the rescales of the last periodSeconds.
func changeInPeriod(events []scaleEvent, periodSeconds int32, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.change
		}
	}
	return n
}

// recordScale remembers a rescale of an HPA with behavior, for the
// policies' periods.
func (h *history) recordScale(key string, b rules, from, to int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	if to > from {
		h.scaleUps[key] = appendEvent(h.scaleUps[key], scaleEvent{change: to - from, at: now}, longestPeriod(b.up), now)
	} else if to < from {
		h.scaleDowns[key] = appendEvent(h.scaleDowns[key], scaleEvent{change: from - to, at: now}, longestPeriod(b.down), now)
	}
}

func appendEvent(events []scaleEvent, e scaleEvent, period time.Duration, now time.Time) []scaleEvent {
	cutoff := now.Add(-period)
	kept := events[:0]
	for _, x := range events {
		if x.at.After(cutoff) {
			kept = append(kept, x)
		}
	}
	return append(kept, e)
}

func longestPeriod(r autoscalingv2.HPAScalingRules) time.Duration {
	var s int32
	for _, p := range r.Policies {
		s = max(s, p.PeriodSeconds)
	}
	return time.Duration(s) * time.Second
}

// rules are an HPA's scaling rules with every default filled in.
type rules struct {
	up, down autoscalingv2.HPAScalingRules
}

// behaviorRules completes an HPA's behavior as the API server's defaulting
// does (for objects stored before it, or written by other servers); the
// scale-down window defaults to the controller's downscale window.
func behaviorRules(b *autoscalingv2.HorizontalPodAutoscalerBehavior, downscaleWindow time.Duration) rules {
	var r rules
	if b != nil {
		if b.ScaleUp != nil {
			r.up = *b.ScaleUp.DeepCopy()
		}
		if b.ScaleDown != nil {
			r.down = *b.ScaleDown.DeepCopy()
		}
	}
	if r.up.StabilizationWindowSeconds == nil {
		r.up.StabilizationWindowSeconds = ptr.To[int32](0)
	}
	if len(r.up.Policies) == 0 {
		r.up.Policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}
	}
	if r.down.StabilizationWindowSeconds == nil {
		r.down.StabilizationWindowSeconds = ptr.To(int32(downscaleWindow / time.Second))
	}
	if len(r.down.Policies) == 0 {
		r.down.Policies = []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
	}
	if r.up.SelectPolicy == nil {
		r.up.SelectPolicy = ptr.To(autoscalingv2.MaxChangePolicySelect)
	}
	if r.down.SelectPolicy == nil {
		r.down.SelectPolicy = ptr.To(autoscalingv2.MaxChangePolicySelect)
	}
	return r
}

// tolerancesOf reads the per-direction tolerances of a behavior
// (HPAConfigurableTolerance), defaulting to 10 %.
func tolerancesOf(b *autoscalingv2.HorizontalPodAutoscalerBehavior) tolerances {
	t := tolerances{down: defaultTolerance, up: defaultTolerance}
	if b == nil {
		return t
	}
	if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
		t.down = b.ScaleDown.Tolerance.AsApproximateFloat64()
	}
	if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
		t.up = b.ScaleUp.Tolerance.AsApproximateFloat64()
	}
	return t
}
