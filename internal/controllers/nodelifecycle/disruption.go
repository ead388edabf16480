package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// zoneState is how disrupted a zone's nodes are, as upstream computes it.
type zoneState string

const (
	stateInitial           zoneState = "Initial"
	stateNormal            zoneState = "Normal"
	statePartialDisruption zoneState = "PartialDisruption"
	stateFullDisruption    zoneState = "FullDisruption"
)

// labelExcludeDisruption keeps a node out of the zone health count.
const labelExcludeDisruption = "node.kubernetes.io/exclude-disruption"

// zoneKey is the zone a node counts in; nodes without the zone label (or
// its deprecated beta form) share the "" zone. Region is part of the key
// as upstream, so equal zone names in two regions stay apart.
func zoneKey(n *corev1.Node) string {
	region, zone := n.Labels[corev1.LabelTopologyRegion], n.Labels[corev1.LabelTopologyZone]
	if region == "" {
		region = n.Labels[corev1.LabelFailureDomainBetaRegion]
	}
	if zone == "" {
		zone = n.Labels[corev1.LabelFailureDomainBetaZone]
	}
	if region == "" && zone == "" {
		return ""
	}
	return region + ":\x00:" + zone
}

// computeZoneState counts a zone's not-ready nodes (Ready not True) and
// classifies it: FullDisruption when none is ready, PartialDisruption when
// at least three and at least threshold of them are not ready.
func computeZoneState(ready []*corev1.NodeCondition, threshold float64) (int, zoneState) {
	notReady := 0
	for _, c := range ready {
		if c == nil || c.Status != corev1.ConditionTrue {
			notReady++
		}
	}
	switch {
	case notReady > 0 && notReady == len(ready):
		return notReady, stateFullDisruption
	case notReady > 2 && float64(notReady)/float64(len(ready)) >= threshold:
		return notReady, statePartialDisruption
	default:
		return notReady, stateNormal
	}
}

// bucket is a token bucket of burst one on the controller's clock: it
// paces how fast nodes of one zone get tainted for eviction. A rate of
// zero never admits.
type bucket struct {
	qps    float64
	tokens float64
	last   time.Time
}

func newBucket(qps float64, now time.Time) *bucket {
	return &bucket{qps: qps, tokens: 1, last: now}
}

func (b *bucket) tryAccept(now time.Time) bool {
	if b.qps <= 0 {
		return false
	}
	if now.After(b.last) {
		b.tokens = min(1, b.tokens+now.Sub(b.last).Seconds()*b.qps)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// zoneRate is the tainting rate for a zone of size nodes in state: the
// secondary rate in partial disruption of a large cluster, none in partial
// disruption of a small one, the normal rate otherwise.
func (c *Controller) zoneRate(state zoneState, size int) float64 {
	if state == statePartialDisruption {
		if size > c.cfg.LargeClusterSize {
			return c.cfg.SecondaryEvictionRate
		}
		return 0
	}
	return c.cfg.EvictionRate
}

// setZoneRate swaps a zone's limiter, with a full bucket as upstream does.
func (c *Controller) setZoneRate(zone string, qps float64, now time.Time) {
	c.limiters[zone] = newBucket(qps, now)
}

// limiter returns the zone's limiter, creating one at the normal rate for
// zones not seen yet.
func (c *Controller) limiter(zone string, now time.Time) *bucket {
	b, ok := c.limiters[zone]
	if !ok {
		b = newBucket(c.cfg.EvictionRate, now)
		c.limiters[zone] = b
	}
	return b
}

// handleDisruption updates the zone states from this pass's Ready
// conditions and sets each zone's tainting rate. It reports whether every
// zone has just entered full disruption, in which case the caller removes
// the eviction taints of all nodes: when no node at all is ready the
// control plane, not the nodes, is the likely culprit.
func (c *Controller) handleDisruption(zones map[string][]*corev1.NodeCondition, now time.Time) (enteredFull bool) {
	next := map[string]zoneState{}
	allFull := true
	for z, conds := range zones {
		_, s := computeZoneState(conds, c.cfg.UnhealthyZoneThreshold)
		if s != stateFullDisruption {
			allFull = false
		}
		next[z] = s
		if _, ok := c.zoneStates[z]; !ok {
			c.zoneStates[z] = stateInitial
		}
	}
	wasFull := true
	for z, s := range c.zoneStates {
		if _, ok := zones[z]; !ok {
			delete(c.zoneStates, z)
			continue
		}
		if s != stateFullDisruption {
			wasFull = false
		}
	}
	if allFull && wasFull {
		return false // still (or never anything but) fully disrupted
	}
	switch {
	case allFull:
		c.log.Info("no node is ready: entering full disruption mode, evictions stop")
		for z := range c.zoneStates {
			c.setZoneRate(z, 0, now)
			c.zoneStates[z] = stateFullDisruption
		}
		return true
	case wasFull:
		c.log.Info("some nodes are ready again: leaving full disruption mode")
		for z := range c.zoneStates {
			c.setZoneRate(z, c.zoneRate(next[z], len(zones[z])), now)
			c.zoneStates[z] = next[z]
		}
	default:
		for z, s := range c.zoneStates {
			if s == next[z] {
				continue
			}
			c.log.Info("zone changed state", "zone", z, "state", string(next[z]))
			c.setZoneRate(z, c.zoneRate(next[z], len(zones[z])), now)
			c.zoneStates[z] = next[z]
		}
	}
	return false
}
