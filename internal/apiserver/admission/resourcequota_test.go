package admission

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type quotaList []*corev1.ResourceQuota

func (l quotaList) ListResourceQuotas(ns string) []*corev1.ResourceQuota {
	var out []*corev1.ResourceQuota
	for _, q := range l {
		if q.Namespace == ns {
			out = append(out, q)
		}
	}
	return out
}

func resList(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

// quota is a quota whose controller has written status.
func quotaWith(name string, hard, used corev1.ResourceList) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "uid-" + "name", ResourceVersion: "1"},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
		Status:     corev1.ResourceQuotaStatus{Hard: hard, Used: used},
	}
}

var (
	quotaPodsGVR       = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	quotaConfigMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

func quotaPod(reqs, lims corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "c1", Resources: corev1.ResourceRequirements{Requests: reqs, Limits: lims}},
			{Name: "c2", Resources: corev1.ResourceRequirements{Requests: reqs, Limits: lims}},
		}}}
}

func createAttrs(gvr schema.GroupVersionResource, obj interface {
	GetName() string
}) *Attributes {
	a := &Attributes{Operation: Create, Resource: gvr, Namespace: "ns", Name: obj.GetName()}
	switch o := obj.(type) {
	case *corev1.Pod:
		a.Object = o
	case *corev1.ConfigMap:
		a.Object = o
	}
	return a
}

func TestResourceQuotaRefusals(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}
	tests := []struct {
		name   string
		quotas quotaList
		a      *Attributes
		want   string // "" means allowed
	}{
		{"no quota", nil, createAttrs(quotaPodsGVR, quotaPod(nil, nil)), ""},
		{"under the limit", quotaList{quotaWith("q", resList("pods", "2"), resList("pods", "1"))}, createAttrs(quotaPodsGVR, quotaPod(nil, nil)), ""},
		{"at the limit", quotaList{quotaWith("q", resList("pods", "2"), resList("pods", "2"))}, createAttrs(quotaPodsGVR, quotaPod(nil, nil)),
			`pods "p" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`},
		{"count name", quotaList{quotaWith("q", resList("count/configmaps", "1"), resList("count/configmaps", "1"))}, createAttrs(quotaConfigMapsGVR, cm),
			`configmaps "cm" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1`},
		{"quota of other resources", quotaList{quotaWith("q", resList("configmaps", "0"), resList("configmaps", "0"))}, createAttrs(quotaPodsGVR, quotaPod(nil, nil)), ""},
		{"compute over", quotaList{quotaWith("q", resList("requests.cpu", "1", "pods", "10"), resList("requests.cpu", "600m", "pods", "1"))},
			createAttrs(quotaPodsGVR, quotaPod(resList("cpu", "300m"), nil)),
			`pods "p" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1`},
		{"compute unspecified", quotaList{quotaWith("q", resList("limits.cpu", "1", "memory", "1Gi"), resList("limits.cpu", "0", "memory", "0"))},
			createAttrs(quotaPodsGVR, quotaPod(nil, nil)),
			`pods "p" is forbidden: failed quota: q: must specify limits.cpu for: c1,c2; memory for: c1,c2`},
		{"status not yet computed", quotaList{{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
			Spec: corev1.ResourceQuotaSpec{Hard: resList("pods", "0")}}}, createAttrs(quotaPodsGVR, quotaPod(nil, nil)), ""},
		{"used missing", quotaList{{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
			Status: corev1.ResourceQuotaStatus{Hard: resList("pods", "1")}}}, createAttrs(quotaPodsGVR, quotaPod(nil, nil)),
			`pods "p" is forbidden: status unknown for quota: q, resources: pods`},
		{"out of scope", quotaList{func() *corev1.ResourceQuota {
			q := quotaWith("q", resList("pods", "0"), resList("pods", "0"))
			q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort}
			return q
		}()}, createAttrs(quotaPodsGVR, quotaPod(nil, nil)), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := NewResourceQuota(tc.quotas).Validate(context.Background(), tc.a)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !apierrors.IsForbidden(err) {
				t.Fatalf("err = %v, want 403", err)
			}
			if err.Error() != tc.want {
				t.Errorf("message\n got %s\nwant %s", err.Error(), tc.want)
			}
		})
	}
}

// Creates admitted since the quota's status was written count, until the
// controller writes a new status.
func TestResourceQuotaCountsAdmittedCreates(t *testing.T) {
	q := quotaWith("q", resList("pods", "2"), resList("pods", "0"))
	p := NewResourceQuota(quotaList{q})
	ctx := context.Background()
	dry := createAttrs(quotaPodsGVR, quotaPod(nil, nil))
	dry.DryRun = true
	for i, want := range []bool{true, true, true, false} {
		a := createAttrs(quotaPodsGVR, quotaPod(nil, nil))
		if i == 0 {
			a = dry // a dry run reserves nothing
		}
		if err := p.Validate(ctx, a); (err == nil) != want {
			t.Fatalf("create %d: err = %v, want allowed=%v", i, err, want)
		}
	}
	// The controller's new status replaces what was admitted.
	q.ResourceVersion = "2"
	q.Status.Used = resList("pods", "1")
	if err := p.Validate(ctx, createAttrs(quotaPodsGVR, quotaPod(nil, nil))); err != nil {
		t.Fatalf("after status update: %v", err)
	}
	// Admitted usage is forgotten after a while (e.g. a create that
	// failed later).
	p.now = func() time.Time { return time.Now().Add(2 * pendingTTL) }
	if err := p.Validate(ctx, createAttrs(quotaPodsGVR, quotaPod(nil, nil))); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
