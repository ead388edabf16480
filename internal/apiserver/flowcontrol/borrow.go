package flowcontrol

import (
	"context"
	"math"
	"slices"
	"time"
)

// Seat borrowing between levels, as upstream's APF since v1.26: every
// BorrowingPeriod each level's current limit is recomputed from its recent
// seat demand, within [nominal - lendable, nominal + borrowing limit], so
// that idle levels lend seats to busy ones while the limits still add up to
// the server's seats.
const (
	// BorrowingPeriod is how often the limits are readjusted.
	BorrowingPeriod = 10 * time.Second
	// demandSmoothing is upstream's seatDemandSmoothingCoefficient: how
	// much of the smoothed demand survives a period.
	demandSmoothing = 0.977
	// minTarget keeps a level with no demand from dividing by zero.
	minTarget = 0.001
)

// demandIntegrator integrates a level's seat demand (seats in use plus
// seats asked for by queued requests) over time.
type demandIntegrator struct {
	begin, last    time.Time
	value, max     float64
	area, areaOfSq float64 // integrals of value and value² since begin
}

func (d *demandIntegrator) start(now time.Time) {
	d.begin, d.last = now, now
	d.area, d.areaOfSq, d.max = 0, 0, d.value
}

func (d *demandIntegrator) set(now time.Time, v float64) {
	d.advance(now)
	d.value = v
	d.max = max(d.max, v)
}

func (d *demandIntegrator) advance(now time.Time) {
	if dt := now.Sub(d.last).Seconds(); dt > 0 {
		d.area += d.value * dt
		d.areaOfSq += d.value * d.value * dt
		d.last = now
	}
}

// demandObs summarizes one window of demand.
type demandObs struct {
	duration         float64 // seconds
	avg, stdDev, max float64
}

// reset returns the window ending at now and starts the next one.
func (d *demandIntegrator) reset(now time.Time) demandObs {
	d.advance(now)
	obs := demandObs{duration: d.last.Sub(d.begin).Seconds(), max: d.max}
	if obs.duration > 0 {
		obs.avg = d.area / obs.duration
		obs.stdDev = math.Sqrt(max(0, d.areaOfSq/obs.duration-obs.avg*obs.avg))
	}
	d.start(d.last)
	return obs
}

// demandStats are what borrowing reads of a level's demand: the high-water
// mark of the last period and an envelope smoothed over many.
type demandStats struct {
	highWater int
	smoothed  float64
}

func (s *demandStats) update(obs demandObs) {
	s.highWater = int(math.Round(obs.max))
	if obs.duration <= 0 {
		return
	}
	envelope := obs.avg + obs.stdDev
	s.smoothed = max(envelope, demandSmoothing*s.smoothed+(1-demandSmoothing)*envelope)
}

// takeStats closes the level's demand window and returns its bounds and
// updated statistics.
func (pl *priorityLevel) takeStats() (bounds, demandStats) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.stats.update(pl.demand.reset(pl.clock.Now()))
	return pl.bounds, pl.stats
}

func (pl *priorityLevel) currentLimit() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.limit
}

// Run readjusts the levels' limits every BorrowingPeriod of the
// controller's clock until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := c.opts.Clock.NewTicker(BorrowingPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			c.AdjustLimits()
		}
	}
}

// AdjustLimits recomputes every level's current limit from its demand
// since the last adjustment.
func (c *Controller) AdjustLimits() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adjustLocked()
}

// adjustLocked is upstream's updateBorrowingLocked. An exempt level takes
// the seats it used (at least its nominal less lendable) off the top. A
// limited level's lower bound is what it cannot lend, raised towards its
// nominal seats by its demand's high-water mark, so a lender gets its seats
// back as soon as it needs them; its upper bound is its nominal seats plus
// its borrowing limit; its target is its smoothed demand. The remaining
// seats go to the limited levels in proportion to their targets within
// their bounds (computeAllocation). When the lower bounds alone exceed the
// seats, the levels get their minimums plus a fair part of the rest.
func (c *Controller) adjustLocked() {
	names := make([]string, 0, len(c.levels))
	for name := range c.levels {
		names = append(names, name)
	}
	slices.Sort(names)
	type limited struct {
		lvl        *priorityLevel
		b          bounds
		minCurrent int
	}
	var (
		items        []allocItem
		lim          []limited
		remaining    = c.nominalSum
		minSum, minC int
	)
	for _, name := range names {
		lvl := c.levels[name]
		b, st := lvl.takeStats()
		if lvl.exempt {
			cl := max(b.min, st.highWater)
			remaining -= cl
			lvl.setLimit(cl)
			currentLimit.WithLabelValues(name).Set(float64(cl))
			continue
		}
		minCurrent := max(b.min, min(b.nominal, st.highWater))
		items = append(items, allocItem{lower: float64(minCurrent), upper: float64(b.max), target: max(float64(minCurrent), st.smoothed)})
		lim = append(lim, limited{lvl: lvl, b: b, minCurrent: minCurrent})
		minSum += b.min
		minC += minCurrent
	}
	limits := make([]int, len(lim))
	switch {
	case remaining <= minSum:
		for i, l := range lim {
			limits[i] = l.b.min
		}
	case remaining <= minC:
		frac := float64(remaining-minSum) / float64(minC-minSum)
		for i, l := range lim {
			limits[i] = l.b.min + int(math.Round(float64(l.minCurrent-l.b.min)*frac))
		}
	default:
		var ok bool
		if limits, ok = computeAllocation(remaining, items); !ok {
			// Inconsistent bounds: keep the limits, as upstream.
			for i, l := range lim {
				limits[i] = l.lvl.currentLimit()
			}
		}
	}
	for i, l := range lim {
		l.lvl.setLimit(limits[i])
		currentLimit.WithLabelValues(l.lvl.name).Set(float64(limits[i]))
	}
}

// allocItem is one level in an allocation problem.
type allocItem struct {
	lower, upper, target float64
}

// computeAllocation finds, as upstream's computeConcurrencyAllocation,
// the fair proportion p such that the allocations clamp(target*p, lower,
// upper) sum to total, and returns them in whole seats that sum to total
// exactly (largest remainders get the rounding; bounds are whole so they
// still hold). It fails when the bounds cannot add up to total.
func computeAllocation(total int, items []allocItem) ([]int, bool) {
	const epsilon = 1e-6
	req := float64(total)
	var lowSum, highSum, pMax float64
	for i := range items {
		it := &items[i]
		if it.lower < 0 || it.upper < it.lower {
			return nil, false
		}
		it.target = max(it.target, minTarget)
		lowSum += it.lower
		highSum += it.upper
		pMax = max(pMax, it.upper/it.target)
	}
	if lowSum > req+epsilon || highSum < req-epsilon {
		return nil, false
	}
	sum := func(p float64) float64 {
		var s float64
		for _, it := range items {
			s += min(it.upper, max(it.lower, it.target*p))
		}
		return s
	}
	// sum is continuous and non-decreasing in p, from lowSum at 0 to
	// highSum at pMax: bisect.
	lo, hi := 0.0, pMax
	for range 200 {
		mid := (lo + hi) / 2
		if sum(mid) < req {
			lo = mid
		} else {
			hi = mid
		}
	}
	out := make([]int, len(items))
	frac := make([]float64, len(items))
	got := 0
	for i, it := range items {
		x := min(it.upper, max(it.lower, it.target*hi))
		f := math.Floor(x + epsilon)
		out[i] = int(min(it.upper, max(it.lower, f)))
		frac[i] = x - float64(out[i])
		got += out[i]
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case frac[a] > frac[b]:
			return -1
		case frac[a] < frac[b]:
			return 1
		}
		return 0
	})
	for got != total {
		moved := false
		if got < total {
			for _, i := range order {
				if got < total && float64(out[i]) < items[i].upper {
					out[i]++
					got++
					moved = true
				}
			}
		} else {
			for _, i := range slices.Backward(order) {
				if got > total && float64(out[i]) > items[i].lower {
					out[i]--
					got--
					moved = true
				}
			}
		}
		if !moved {
			return nil, false
		}
	}
	return out, true
}
