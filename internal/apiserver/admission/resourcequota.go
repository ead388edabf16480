package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/quota"
)

// QuotaLookup lists a namespace's ResourceQuotas (the API server's cache).
type QuotaLookup interface {
	ListResourceQuotas(namespace string) []*corev1.ResourceQuota
}

// QuotaStatusWriter stores a quota if its resourceVersion is still the
// stored one; on a conflict it returns the stored quota with the error.
// A QuotaLookup that is one lets admission charge quotas in storage.
type QuotaStatusWriter interface {
	UpdateResourceQuotaStatus(ctx context.Context, q *corev1.ResourceQuota) (*corev1.ResourceQuota, error)
}

// chargeAttempts bounds the compare-and-swap retries of one charge.
const chargeAttempts = 5

// pendingTTL bounds how long an admitted create counts against a quota
// before the quota controller's status is expected to include it; it also
// forgets creates that failed after admission.
const pendingTTL = 30 * time.Second

// ResourceQuota refuses creates that would take a namespace over one of
// its quotas, as upstream's plugin. When its lookup can write, an admitted
// create is charged to status.used with a compare-and-swap, as upstream
// does, so that a status the resourcequota controller computed before the
// create cannot hide it. Otherwise usage is status.used plus what this
// server admitted since that status was written.
type ResourceQuota struct {
	lookup QuotaLookup
	now    func() time.Time

	mu      sync.Mutex
	pending map[types.UID][]admitted
}

// admitted is usage this server let through while the quota's status was
// at resourceVersion rv.
type admitted struct {
	rv   string
	at   time.Time
	used corev1.ResourceList
}

// NewResourceQuota returns the plugin reading quotas from lookup.
func NewResourceQuota(lookup QuotaLookup) *ResourceQuota {
	return &ResourceQuota{lookup: lookup, now: time.Now, pending: map[types.UID][]admitted{}}
}

// Name implements Validator.
func (*ResourceQuota) Name() string { return "ResourceQuota" }

// Validate implements Validator.
func (p *ResourceQuota) Validate(ctx context.Context, a *Attributes) error {
	if p.lookup == nil || a.Operation != Create || a.Subresource != "" || a.Namespace == "" || a.Object == nil {
		return nil
	}
	gr := a.Resource.GroupResource()
	quotas := p.lookup.ListResourceQuotas(a.Namespace)
	if len(quotas) == 0 {
		return nil
	}
	quotas = slices.Clone(quotas)
	sort.Slice(quotas, func(i, j int) bool { return quotas[i].Name < quotas[j].Name })
	now := p.now()
	usage := quota.Usage(gr, a.Object, now)
	forbid := func(err error) error { return apierrors.NewForbidden(gr, a.Name, err) }

	type check struct {
		q         *corev1.ResourceQuota
		requested corev1.ResourceList
	}
	var checks []check
	for _, q := range quotas {
		if !quota.Matches(gr, q.Status.Hard) || !quota.InScope(&q.Spec, a.Object) {
			continue
		}
		restricted := matching(gr, q.Status.Hard)
		if pod, ok := a.Object.(*corev1.Pod); ok {
			if msg := missingCompute(pod, restricted); msg != "" {
				return forbid(fmt.Errorf("failed quota: %s: must specify %s", q.Name, msg))
			}
		}
		var unknown []string
		for _, n := range restricted {
			if _, ok := q.Status.Used[n]; !ok {
				unknown = append(unknown, string(n))
			}
		}
		if len(unknown) > 0 {
			return forbid(fmt.Errorf("status unknown for quota: %s, resources: %s", q.Name, strings.Join(unknown, ",")))
		}
		requested := mask(usage, restricted)
		if len(requested) > 0 {
			checks = append(checks, check{q, requested})
		}
	}
	if len(checks) == 0 {
		return nil
	}

	if w, ok := p.lookup.(QuotaStatusWriter); ok {
		for _, c := range checks {
			if err := exceeds(c.q, c.q.Status.Used, c.requested); err != nil {
				return forbid(err)
			}
		}
		if a.DryRun {
			return nil
		}
		for _, c := range checks {
			refused, err := charge(ctx, w, c.q, c.requested)
			if refused != nil {
				return forbid(refused)
			}
			if err != nil {
				return fmt.Errorf("charging quota %s/%s: %w", c.q.Namespace, c.q.Name, err)
			}
		}
		return nil
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range checks {
		if err := exceeds(c.q, quota.Add(c.q.Status.Used, p.pendingLocked(c.q, now)), c.requested); err != nil {
			return forbid(err)
		}
	}
	if a.DryRun {
		return nil
	}
	for _, c := range checks {
		p.pending[c.q.UID] = append(p.pending[c.q.UID], admitted{rv: c.q.ResourceVersion, at: now, used: c.requested})
	}
	p.pruneLocked(now)
	return nil
}

// exceeds is upstream's refusal when used plus requested passes one of
// q's hard limits.
func exceeds(q *corev1.ResourceQuota, used, requested corev1.ResourceList) error {
	var exceeded []corev1.ResourceName
	for n, req := range requested {
		total := used[n]
		total.Add(req)
		if total.Cmp(q.Status.Hard[n]) > 0 {
			exceeded = append(exceeded, n)
		}
	}
	if len(exceeded) == 0 {
		return nil
	}
	return fmt.Errorf("exceeded quota: %s, requested: %s, used: %s, limited: %s", q.Name,
		prettyPrint(requested, exceeded), prettyPrint(used, exceeded), prettyPrint(q.Status.Hard, exceeded))
}

// charge adds requested to q's stored status.used. On a conflict it
// checks again against the stored quota, which may now refuse (refused).
func charge(ctx context.Context, w QuotaStatusWriter, q *corev1.ResourceQuota, requested corev1.ResourceList) (refused, err error) {
	for range chargeAttempts {
		next := q.DeepCopy()
		next.Status.Used = quota.Add(q.Status.Used, requested)
		cur, err := w.UpdateResourceQuotaStatus(ctx, next)
		if err == nil {
			return nil, nil
		}
		if !apierrors.IsConflict(err) || cur == nil {
			return nil, err
		}
		if refused := exceeds(cur, cur.Status.Used, requested); refused != nil {
			return refused, nil
		}
		q = cur
	}
	return nil, errors.New("too many conflicts writing its status")
}

// pendingLocked sums what was admitted against q since its status was
// last written, dropping entries the status has caught up with.
func (p *ResourceQuota) pendingLocked(q *corev1.ResourceQuota, now time.Time) corev1.ResourceList {
	sum := corev1.ResourceList{}
	kept := p.pending[q.UID][:0]
	for _, e := range p.pending[q.UID] {
		if e.rv != q.ResourceVersion || now.Sub(e.at) > pendingTTL {
			continue
		}
		kept = append(kept, e)
		sum = quota.Add(sum, e.used)
	}
	if len(kept) == 0 {
		delete(p.pending, q.UID)
	} else {
		p.pending[q.UID] = kept
	}
	return sum
}

// pruneLocked forgets expired entries of quotas no longer asked about
// (deleted ones, or ones whose namespace sees no more creates).
func (p *ResourceQuota) pruneLocked(now time.Time) {
	for uid, es := range p.pending {
		if len(es) > 0 && now.Sub(es[len(es)-1].at) > pendingTTL {
			delete(p.pending, uid)
		}
	}
}

// matching are the hard resources an object of gr can use, sorted.
func matching(gr schema.GroupResource, hard corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for n := range hard {
		if quota.Matches(gr, corev1.ResourceList{n: hard[n]}) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func mask(l corev1.ResourceList, names []corev1.ResourceName) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, n := range names {
		if q, ok := l[n]; ok {
			out[n] = q
		}
	}
	return out
}

// prettyPrint is upstream's "name=value,..." in name order.
func prettyPrint(l corev1.ResourceList, names []corev1.ResourceName) string {
	names = slices.Clone(names)
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		q := l[n]
		parts = append(parts, fmt.Sprintf("%s=%s", n, q.String()))
	}
	return strings.Join(parts, ",")
}

// computeNames are the resources every container must state when a quota
// limits them (upstream keeps this for compatibility; other resources are
// left to QoS).
var computeNames = []corev1.ResourceName{
	corev1.ResourceCPU, corev1.ResourceMemory,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
}

// missingCompute lists, for each restricted compute resource some
// container leaves unset, the containers: "cpu for: a,b; memory for: a".
func missingCompute(pod *corev1.Pod, restricted []corev1.ResourceName) string {
	var required []corev1.ResourceName
	for _, n := range restricted {
		if slices.Contains(computeNames, n) {
			required = append(required, n)
		}
	}
	if len(required) == 0 {
		return ""
	}
	podLevel := map[corev1.ResourceName]bool{}
	if pod.Spec.Resources != nil {
		for n := range stated(*pod.Spec.Resources) {
			podLevel[n] = true
		}
	}
	missing := map[corev1.ResourceName][]string{}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			has := stated(c.Resources)
			for _, n := range required {
				if !has[n] && !podLevel[n] {
					missing[n] = append(missing[n], c.Name)
				}
			}
		}
	}
	var parts []string
	for _, n := range required {
		if names := missing[n]; len(names) > 0 {
			slices.Sort(names)
			parts = append(parts, fmt.Sprintf("%s for: %s", n, strings.Join(slices.Compact(names), ",")))
		}
	}
	return strings.Join(parts, "; ")
}

// stated are the compute quota names a container's resources fill.
func stated(r corev1.ResourceRequirements) map[corev1.ResourceName]bool {
	out := map[corev1.ResourceName]bool{}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := r.Requests[res]; ok {
			out[res] = true
			out["requests."+res] = true
		}
		if _, ok := r.Limits[res]; ok {
			out["limits."+res] = true
		}
	}
	return out
}
