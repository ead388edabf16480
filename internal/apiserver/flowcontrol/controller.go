package flowcontrol

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

// Upstream's defaults.
const (
	// DefaultConcurrencyLimit is --max-requests-inflight (400) plus
	// --max-mutating-requests-inflight (200): the seats limited levels share.
	DefaultConcurrencyLimit = 600
	// DefaultRequestWaitLimit is how long a request may wait in a queue:
	// a quarter of the 60 s request timeout.
	DefaultRequestWaitLimit = 15 * time.Second
)

// Options configure a Controller.
type Options struct {
	// ConcurrencyLimit is the server's total of seats, split among the
	// limited levels by their nominal concurrency shares.
	ConcurrencyLimit int
	// RequestWaitLimit bounds the time a request waits for a seat.
	RequestWaitLimit time.Duration
	// Clock times seat demand, borrowing and the seats writes keep after
	// they end (default: the real clock).
	Clock clock.WithTicker
}

// Controller classifies and dispatches requests under the configuration
// last given to Update. Requests read an immutable snapshot of it, so
// classification takes no lock; each limited level has its own. Run
// makes the levels lend and borrow seats.
type Controller struct {
	opts Options
	cfg  atomic.Pointer[config]

	mu         sync.Mutex // serialises Update and borrowing
	levels     map[string]*priorityLevel
	nominalSum int // the levels' nominal seats, which borrowing shares out
}

// config is one compiled configuration.
type config struct {
	schemas  []*schemaMatcher // matching order
	catchAll *schemaMatcher
}

// New returns a controller running upstream's default configuration until
// the first Update.
func New(opts Options) *Controller {
	if opts.ConcurrencyLimit <= 0 {
		opts.ConcurrencyLimit = DefaultConcurrencyLimit
	}
	if opts.RequestWaitLimit <= 0 {
		opts.RequestWaitLimit = DefaultRequestWaitLimit
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	registerMetrics()
	c := &Controller{opts: opts, levels: map[string]*priorityLevel{}}
	b := DefaultBootstrap()
	var fss []*flowcontrolv1.FlowSchema
	var pls []*flowcontrolv1.PriorityLevelConfiguration
	for _, d := range b.FlowSchemas {
		fss = append(fss, d.Object)
	}
	for _, d := range b.PriorityLevels {
		pls = append(pls, d.Object)
	}
	c.Update(fss, pls)
	return c
}

// Update installs a new configuration and readjusts the levels' limits, as
// upstream. Levels keep their queued and executing requests across
// updates; schemas whose level does not exist (dangling) are ignored, as
// upstream.
func (c *Controller) Update(fss []*flowcontrolv1.FlowSchema, pls []*flowcontrolv1.PriorityLevelConfiguration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fss, pls = withMandatory(fss, pls)
	var sumShares int64
	for _, pl := range pls {
		sumShares += int64(shares(pl))
	}
	byName := make(map[string]*flowcontrolv1.PriorityLevelConfiguration, len(pls))
	next := &config{}
	levels := make(map[string]*priorityLevel, len(pls))
	levelUIDs := make(map[string]types.UID, len(pls))
	nominalSum := 0
	for _, pl := range pls {
		levelUIDs[pl.Name] = pl.UID
		byName[pl.Name] = pl
		var b bounds
		levels[pl.Name], b = c.configureLevel(pl, sumShares)
		nominalSum += b.nominal
	}
	for _, fs := range fss {
		lvl, ok := levels[fs.Spec.PriorityLevelConfiguration.Name]
		if !ok {
			continue
		}
		m := compileSchema(fs)
		m.level, m.levelUID = lvl, levelUIDs[lvl.name]
		m.metrics = newSchemaMetrics(fs.Name, lvl.name)
		next.schemas = append(next.schemas, m)
		if fs.Name == apfdefaults.CatchAll {
			next.catchAll = m
		}
	}
	slices.SortFunc(next.schemas, func(a, b *schemaMatcher) int {
		return cmp.Or(cmp.Compare(a.precedence, b.precedence), cmp.Compare(a.name, b.name))
	})
	c.levels, c.nominalSum = levels, nominalSum
	c.adjustLocked()
	c.cfg.Store(next)
}

// withMandatory adds the mandatory objects missing from the given ones, as
// upstream does before using a configuration, so that exempt and catch-all
// always exist.
func withMandatory(fss []*flowcontrolv1.FlowSchema, pls []*flowcontrolv1.PriorityLevelConfiguration) ([]*flowcontrolv1.FlowSchema, []*flowcontrolv1.PriorityLevelConfiguration) {
	for _, want := range apfdefaults.MandatoryPriorityLevels() {
		if !slices.ContainsFunc(pls, func(pl *flowcontrolv1.PriorityLevelConfiguration) bool { return pl.Name == want.Name }) {
			pls = append(slices.Clip(pls), want)
		}
	}
	for _, want := range apfdefaults.MandatoryFlowSchemas() {
		if !slices.ContainsFunc(fss, func(fs *flowcontrolv1.FlowSchema) bool { return fs.Name == want.Name }) {
			fss = append(slices.Clip(fss), want)
		}
	}
	return fss, pls
}

// configureLevel returns the (kept or new) level for pl with its seats
// bounds set as upstream's: nominal = ceil(limit * shares / sum of all
// levels' shares); it may lend round(nominal * lendablePercent / 100) and
// borrow round(nominal * borrowingLimitPercent / 100), or up to the
// server's limit when that is unset (always for exempt levels).
func (c *Controller) configureLevel(pl *flowcontrolv1.PriorityLevelConfiguration, sumShares int64) (*priorityLevel, bounds) {
	exempt := pl.Spec.Type == flowcontrolv1.PriorityLevelEnablementExempt
	lvl, ok := c.levels[pl.Name]
	fresh := !ok || lvl.exempt != exempt
	if fresh {
		lvl = newPriorityLevel(pl.Name, exempt, c.opts.Clock)
	}
	nominal := 0
	if sumShares > 0 {
		nominal = int(math.Ceil(float64(c.opts.ConcurrencyLimit) * float64(shares(pl)) / float64(sumShares)))
	}
	lendable, borrowing := 0, c.opts.ConcurrencyLimit
	var lendPct, borrowPct *int32
	switch {
	case pl.Spec.Limited != nil:
		lendPct, borrowPct = pl.Spec.Limited.LendablePercent, pl.Spec.Limited.BorrowingLimitPercent
	case pl.Spec.Exempt != nil:
		lendPct = pl.Spec.Exempt.LendablePercent
	}
	if lendPct != nil {
		lendable = int(math.Round(float64(nominal) * float64(*lendPct) / 100))
	}
	if borrowPct != nil {
		borrowing = int(math.Round(float64(nominal) * float64(*borrowPct) / 100))
	}
	b := bounds{nominal: nominal, min: nominal - lendable, max: nominal + borrowing}
	var q queuing
	if l := pl.Spec.Limited; l != nil && l.LimitResponse.Type == flowcontrolv1.LimitResponseTypeQueue && l.LimitResponse.Queuing != nil {
		qc := l.LimitResponse.Queuing
		q = queuing{queues: int(qc.Queues), handSize: int(qc.HandSize), lengthLimit: int(qc.QueueLengthLimit)}
	}
	lvl.configure(shares(pl), b, levelMaxSeats(nominal, q), q, fresh)
	nominalLimit.WithLabelValues(pl.Name).Set(float64(nominal))
	return lvl, b
}

func shares(pl *flowcontrolv1.PriorityLevelConfiguration) int32 {
	switch {
	case pl.Spec.Limited != nil && pl.Spec.Limited.NominalConcurrencyShares != nil:
		return *pl.Spec.Limited.NominalConcurrencyShares
	case pl.Spec.Limited != nil:
		return 30 // upstream's default
	case pl.Spec.Exempt != nil && pl.Spec.Exempt.NominalConcurrencyShares != nil:
		return *pl.Spec.Exempt.NominalConcurrencyShares
	}
	return 0
}

// Classification names the schema and level a request matched.
type Classification struct {
	FlowSchema, PriorityLevel       string
	FlowSchemaUID, PriorityLevelUID types.UID
	// Exempt requests are never queued nor rejected.
	Exempt bool
}

// Classify returns where r belongs without admitting it.
func (c *Controller) Classify(r *Request) Classification {
	return c.cfg.Load().classify(r).classification()
}

func (m *schemaMatcher) classification() Classification {
	return Classification{
		FlowSchema: m.name, PriorityLevel: m.level.name,
		FlowSchemaUID: m.uid, PriorityLevelUID: m.levelUID, Exempt: m.level.exempt,
	}
}

// NominalLimit returns the named level's share of the server's seats
// before lending and borrowing (0 if unknown).
func (c *Controller) NominalLimit(level string) int {
	c.mu.Lock()
	lvl := c.levels[level]
	c.mu.Unlock()
	if lvl == nil {
		return 0
	}
	lvl.mu.Lock()
	defer lvl.mu.Unlock()
	return lvl.bounds.nominal
}

// Limit returns the current seats of the named level, its nominal seats
// adjusted by borrowing (0 if unknown).
func (c *Controller) Limit(level string) int {
	c.mu.Lock()
	lvl := c.levels[level]
	c.mu.Unlock()
	if lvl == nil {
		return 0
	}
	return lvl.currentLimit()
}

// Rejection is a request turned away: answer 429 with Retry-After.
type Rejection struct {
	Reason     string
	RetryAfter int64 // seconds
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("too many requests (%s), retry after %ds", r.Reason, r.RetryAfter)
}

// Ticket is a dispatched request's seats; Done frees them.
type Ticket struct {
	level *priorityLevel
	q     *fqueue
	m     *schemaMetrics
	seats int
	watch *watchSeats // a WATCH's seats (ForWatch), freed at most once
	// hold keeps a write's seats this long after Done, for its watch
	// events (mutatingFinalSeats); clock times it.
	hold  time.Duration
	clock clock.Clock
}

// Done releases the seats. The zero Ticket does nothing.
func (t Ticket) Done() {
	if t.watch != nil {
		t.watch.release()
		return
	}
	if t.level == nil {
		return
	}
	t.m.executing.Dec()
	if t.hold > 0 {
		// A timer and a goroutine rather than AfterFunc: a fake clock runs
		// AfterFunc's function under its lock, which release takes too.
		timer := t.clock.NewTimer(t.hold)
		go func() {
			<-timer.C()
			t.level.release(t.q, t.seats)
		}()
		return
	}
	t.level.release(t.q, t.seats)
}

// Seats returns how many seats the request holds.
func (t Ticket) Seats() int { return t.seats }

// Admit classifies r and waits until its level has r.Seats seats for it,
// or more for a write whose events reach many watchers (r.Watchers). It
// fails with a *Rejection when the flow's queue is full, the level rejects
// instead of queuing, or the wait exceeds the limit or ctx ends.
func (c *Controller) Admit(ctx context.Context, r *Request) (Ticket, Classification, error) {
	m := c.cfg.Load().classify(r)
	cl := m.classification()
	start := time.Now()
	final := mutatingFinalSeats(r.Watchers)
	if r.ResourceRequest && IsWrite(r.Verb) {
		m.metrics.watchCount.Observe(float64(r.Watchers))
	}
	m.metrics.seats.Observe(float64(max(1, r.Seats, final)))
	q, seats, err := m.level.acquire(ctx, flowHash(m.name, m.flowDistinguisher(r)), max(r.Seats, final), c.opts.RequestWaitLimit, m.metrics)
	wait := time.Since(start).Seconds()
	if err != nil {
		reason := err.(*errReject).reason
		m.metrics.rejected(reason).Inc()
		m.metrics.waitRejected.Observe(wait)
		return Ticket{}, cl, &Rejection{Reason: reason, RetryAfter: m.level.retry.record(time.Now())}
	}
	m.metrics.waitExecuted.Observe(wait)
	m.metrics.dispatched.Inc()
	m.metrics.executing.Inc()
	t := Ticket{level: m.level, q: q, m: m.metrics, seats: seats}
	if final > 0 && !m.level.exempt {
		t.hold, t.clock = finalHold(final, seats), c.opts.Clock
	}
	return t, cl, nil
}

// DanglingCondition returns the Dangling condition fs should carry given
// whether its priority level exists, with upstream's reasons and messages,
// and whether it differs from the one fs has (so status needs a write).
func DanglingCondition(fs *flowcontrolv1.FlowSchema, levelExists bool, now time.Time) (flowcontrolv1.FlowSchemaCondition, bool) {
	name := fs.Spec.PriorityLevelConfiguration.Name
	want := flowcontrolv1.FlowSchemaCondition{
		Type:    flowcontrolv1.FlowSchemaConditionDangling,
		Status:  flowcontrolv1.ConditionFalse,
		Reason:  "Found",
		Message: fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q and it exists", name),
	}
	if !levelExists {
		want.Status, want.Reason = flowcontrolv1.ConditionTrue, "NotFound"
		want.Message = fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q but there is no such object", name)
	}
	for _, c := range fs.Status.Conditions {
		if c.Type != want.Type {
			continue
		}
		if c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message {
			return c, false
		}
		if c.Status == want.Status {
			want.LastTransitionTime = c.LastTransitionTime
		}
	}
	if want.LastTransitionTime.IsZero() {
		want.LastTransitionTime = metav1.NewTime(now)
	}
	return want, true
}
