package admission

import (
	"context"
	"errors"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// quotaStore is one stored quota behind a compare-and-swap, read by
// admission as the API server's cache would.
type quotaStore struct {
	q      *corev1.ResourceQuota
	writes int
}

func (s *quotaStore) ListResourceQuotas(string) []*corev1.ResourceQuota {
	return []*corev1.ResourceQuota{s.q}
}

func (s *quotaStore) UpdateResourceQuotaStatus(_ context.Context, q *corev1.ResourceQuota) (*corev1.ResourceQuota, error) {
	if q.ResourceVersion != s.q.ResourceVersion {
		return s.q, apierrors.NewConflict(schema.GroupResource{Resource: "resourcequotas"}, q.Name, errors.New("modified"))
	}
	s.writes++
	rv, _ := strconv.Atoi(q.ResourceVersion)
	s.q = q.DeepCopy()
	s.q.ResourceVersion = strconv.Itoa(rv + 1)
	return nil, nil
}

var quotaServicesGVR = schema.GroupVersionResource{Version: "v1", Resource: "services"}

func serviceAttrs(name string, typ corev1.ServiceType, allocateNodePorts *bool) *Attributes {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 80}},
			AllocateLoadBalancerNodePorts: allocateNodePorts},
	}
	return &Attributes{Operation: Create, Resource: quotaServicesGVR, Namespace: "ns", Name: name, Object: svc}
}

// The conformance sequence: a NodePort Service takes the only node port,
// then the controller writes a status it computed before that create. The
// LoadBalancer Service that needs a node port must still be refused.
func TestResourceQuotaChargesStatusOnAdmission(t *testing.T) {
	hard := resList("services", "10", "services.nodeports", "1", "services.loadbalancers", "1")
	st := &quotaStore{q: quotaWith("q", hard, resList("services", "0", "services.nodeports", "0", "services.loadbalancers", "0"))}
	p := NewResourceQuota(st)
	ctx := context.Background()

	controllerView := st.q // what the controller read before the creates
	yes := true
	if err := p.Validate(ctx, serviceAttrs("np", corev1.ServiceTypeNodePort, nil)); err != nil {
		t.Fatalf("NodePort service: %v", err)
	}
	if got := st.q.Status.Used[corev1.ResourceServicesNodePorts]; got.Value() != 1 {
		t.Fatalf("stored nodeports used after admission = %s, want 1", got.String())
	}

	// The controller's stale recount must not replace the charged status.
	stale := controllerView.DeepCopy()
	stale.Status.Used = resList("services", "0", "services.nodeports", "0", "services.loadbalancers", "0")
	if _, err := st.UpdateResourceQuotaStatus(ctx, stale); !apierrors.IsConflict(err) {
		t.Fatalf("stale controller write: %v, want a conflict", err)
	}

	err := p.Validate(ctx, serviceAttrs("lb", corev1.ServiceTypeLoadBalancer, &yes))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("LoadBalancer service with a node port: %v, want forbidden", err)
	}

	// A dry run is checked but charges nothing.
	writes := st.writes
	dry := serviceAttrs("dry", corev1.ServiceTypeClusterIP, nil)
	dry.DryRun = true
	if err := p.Validate(ctx, dry); err != nil || st.writes != writes {
		t.Fatalf("dry run: err %v, %d writes, want none", err, st.writes-writes)
	}
}

// Admission reading a stale quota retries against the stored one, which
// may refuse.
func TestResourceQuotaChargeRetriesOnConflict(t *testing.T) {
	hard := resList("services", "1")
	st := &quotaStore{q: quotaWith("q", hard, resList("services", "0"))}
	p := NewResourceQuota(&staleLookup{quotaStore: st, cached: st.q})
	ctx := context.Background()
	if err := p.Validate(ctx, serviceAttrs("a", corev1.ServiceTypeClusterIP, nil)); err != nil {
		t.Fatalf("first service: %v", err)
	}
	// The cache still shows services=0; the store says 1 of 1.
	if err := p.Validate(ctx, serviceAttrs("b", corev1.ServiceTypeClusterIP, nil)); !apierrors.IsForbidden(err) {
		t.Fatalf("second service on a stale cache: %v, want forbidden", err)
	}
}

// staleLookup lists a cached quota that lags the store.
type staleLookup struct {
	*quotaStore
	cached *corev1.ResourceQuota
}

func (l *staleLookup) ListResourceQuotas(string) []*corev1.ResourceQuota {
	return []*corev1.ResourceQuota{l.cached}
}
