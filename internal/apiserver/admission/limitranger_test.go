package admission

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type lrLookup map[string][]*corev1.LimitRange

func (l lrLookup) ListLimitRanges(ns string) []*corev1.LimitRange { return l[ns] }

// lrList builds a ResourceList from name, quantity pairs.
func lrList(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func lrRange(items ...corev1.LimitRangeItem) *corev1.LimitRange {
	return &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lr"}, Spec: corev1.LimitRangeSpec{Limits: items}}
}

func lrPod(containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: corev1.PodSpec{Containers: containers}}
}

func lrContainer(name string, requests, limits corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}
}

func TestLimitRangerDefaults(t *testing.T) {
	defaults := corev1.LimitRangeItem{
		Type:           corev1.LimitTypeContainer,
		Default:        lrList("cpu", "500m", "memory", "500Mi"),
		DefaultRequest: lrList("cpu", "100m", "memory", "200Mi"),
	}
	tests := []struct {
		name         string
		ranges       []*corev1.LimitRange
		pod          *corev1.Pod
		wantRequests corev1.ResourceList
		wantLimits   corev1.ResourceList
		annotation   string
	}{{
		name:         "empty container gets both",
		ranges:       []*corev1.LimitRange{lrRange(defaults)},
		pod:          lrPod(lrContainer("c", nil, nil)),
		wantRequests: lrList("cpu", "100m", "memory", "200Mi"),
		wantLimits:   lrList("cpu", "500m", "memory", "500Mi"),
		annotation:   "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c",
	}, {
		name:         "set values are kept",
		ranges:       []*corev1.LimitRange{lrRange(defaults)},
		pod:          lrPod(lrContainer("c", lrList("cpu", "300m"), lrList("memory", "1Gi"))),
		wantRequests: lrList("cpu", "300m", "memory", "1Gi"),
		wantLimits:   lrList("cpu", "500m", "memory", "1Gi"),
		annotation:   "LimitRanger plugin set: cpu limit for container c",
	}, {
		name:         "request defaults from max and min",
		ranges:       []*corev1.LimitRange{lrRange(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: lrList("cpu", "2"), Min: lrList("memory", "10Mi")})},
		pod:          lrPod(lrContainer("c", nil, nil)),
		wantRequests: lrList("cpu", "2", "memory", "10Mi"),
		wantLimits:   lrList("cpu", "2"),
		annotation:   "LimitRanger plugin set: cpu, memory request for container c; cpu limit for container c",
	}, {
		name:       "pod items give no defaults",
		ranges:     []*corev1.LimitRange{lrRange(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: lrList("cpu", "2")})},
		pod:        lrPod(lrContainer("c", nil, nil)),
		wantLimits: nil,
	}, {
		name:   "no limit ranges leaves the pod alone",
		pod:    lrPod(lrContainer("c", nil, nil)),
		ranges: nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewLimitRanger(lrLookup{"ns": tt.ranges})
			if err := p.Admit(context.Background(), podCreate(tt.pod)); err != nil {
				t.Fatal(err)
			}
			c := tt.pod.Spec.Containers[0]
			if !lrEqual(c.Resources.Requests, tt.wantRequests) || !lrEqual(c.Resources.Limits, tt.wantLimits) {
				t.Errorf("resources = %v / %v, want %v / %v", c.Resources.Requests, c.Resources.Limits, tt.wantRequests, tt.wantLimits)
			}
			if got := tt.pod.Annotations[LimitRangerAnnotation]; got != tt.annotation {
				t.Errorf("annotation = %q, want %q", got, tt.annotation)
			}
		})
	}
}

func TestLimitRangerDefaultsInitContainers(t *testing.T) {
	p := NewLimitRanger(lrLookup{"ns": {lrRange(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Default: lrList("cpu", "1")})}})
	pod := lrPod(lrContainer("c", nil, lrList("cpu", "2")))
	pod.Spec.InitContainers = []corev1.Container{lrContainer("i", nil, nil)}
	if err := p.Admit(context.Background(), podCreate(pod)); err != nil {
		t.Fatal(err)
	}
	// A limit without a request is the request (as upstream's defaulting),
	// not the range's default.
	if got := pod.Spec.Containers[0].Resources.Requests; !lrEqual(got, lrList("cpu", "2")) {
		t.Errorf("container requests = %v, want cpu 2", got)
	}
	ic := pod.Spec.InitContainers[0].Resources
	if !lrEqual(ic.Requests, lrList("cpu", "1")) || !lrEqual(ic.Limits, lrList("cpu", "1")) {
		t.Errorf("init container resources = %v", ic)
	}
	want := "LimitRanger plugin set: cpu request for init container i; cpu limit for init container i"
	if got := pod.Annotations[LimitRangerAnnotation]; got != want {
		t.Errorf("annotation = %q, want %q", got, want)
	}
}

func TestLimitRangerValidatePods(t *testing.T) {
	container := func(items ...corev1.LimitRangeItem) *corev1.LimitRange { return lrRange(items...) }
	tests := []struct {
		name  string
		lr    *corev1.LimitRange
		pod   *corev1.Pod
		want  string // empty: admitted
		setup func(*corev1.Pod)
	}{{
		name: "within bounds",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: lrList("cpu", "100m"), Max: lrList("cpu", "1")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "200m"), lrList("cpu", "500m"))),
	}, {
		name: "request below min",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: lrList("cpu", "100m")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "50m"), nil)),
		want: `pods "x" is forbidden: minimum cpu usage per Container is 100m, but request is 50m`,
	}, {
		name: "no request under min",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: lrList("memory", "1Mi")}),
		pod:  lrPod(lrContainer("c", nil, nil)),
		want: `pods "x" is forbidden: minimum memory usage per Container is 1Mi.  No request is specified`,
	}, {
		name: "limit below min",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: lrList("cpu", "100m")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "200m"), lrList("cpu", "50m"))),
		want: `pods "x" is forbidden: minimum cpu usage per Container is 100m, but limit is 50m`,
	}, {
		name: "limit above max",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: lrList("cpu", "500m")}),
		pod:  lrPod(lrContainer("c", nil, lrList("cpu", "1"))),
		want: `pods "x" is forbidden: maximum cpu usage per Container is 500m, but limit is 1`,
	}, {
		name: "no limit under max",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: lrList("memory", "1Gi")}),
		pod:  lrPod(lrContainer("c", lrList("memory", "1Mi"), nil)),
		want: `pods "x" is forbidden: maximum memory usage per Container is 1Gi.  No limit is specified`,
	}, {
		name: "request above max",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: lrList("cpu", "500m")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "600m"), lrList("cpu", "400m"))),
		want: `pods "x" is forbidden: maximum cpu usage per Container is 500m, but request is 600m`,
	}, {
		name: "ratio exceeded",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: lrList("cpu", "2")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "100m"), lrList("cpu", "400m"))),
		want: `pods "x" is forbidden: cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000`,
	}, {
		name: "fractional ratio kept",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: lrList("cpu", "1500m")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "100m"), lrList("cpu", "150m"))),
	}, {
		name: "ratio without request",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: lrList("cpu", "2")}),
		pod:  lrPod(lrContainer("c", nil, nil)),
		want: `pods "x" is forbidden: cpu max limit to request ratio per Container is 2, but no request is specified or request is 0`,
	}, {
		name: "ratio without limit",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, MaxLimitRequestRatio: lrList("cpu", "2")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "1"), nil)),
		want: `pods "x" is forbidden: cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0`,
	}, {
		name: "init container checked",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: lrList("cpu", "1")}),
		pod:  lrPod(lrContainer("c", nil, lrList("cpu", "1"))),
		setup: func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{lrContainer("i", nil, lrList("cpu", "2"))}
		},
		want: `pods "x" is forbidden: maximum cpu usage per Container is 1, but limit is 2`,
	}, {
		name: "two violations aggregate",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Max: lrList("cpu", "500m"), MaxLimitRequestRatio: lrList("cpu", "2")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "100m"), lrList("cpu", "1"))),
		want: `pods "x" is forbidden: [maximum cpu usage per Container is 500m, but limit is 1, cpu max limit to request ratio per Container is 2, but provided ratio is 10.000000]`,
	}, {
		name: "pod max sums containers",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: lrList("memory", "1Gi")}),
		pod: lrPod(lrContainer("a", nil, lrList("memory", "600Mi")),
			lrContainer("b", nil, lrList("memory", "600Mi"))),
		want: `pods "x" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1200Mi`,
	}, {
		name: "pod min takes largest init container",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Min: lrList("cpu", "1")}),
		pod:  lrPod(lrContainer("c", lrList("cpu", "100m"), nil)),
		setup: func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{lrContainer("i", lrList("cpu", "1"), nil)}
		},
	}, {
		name: "pod sidecar adds up",
		lr:   container(corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: lrList("cpu", "1")}),
		pod:  lrPod(lrContainer("c", nil, lrList("cpu", "800m"))),
		setup: func(p *corev1.Pod) {
			sc := lrContainer("s", nil, lrList("cpu", "300m"))
			sc.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
			p.Spec.InitContainers = []corev1.Container{sc}
		},
		want: `pods "x" is forbidden: maximum cpu usage per Pod is 1, but limit is 1100m`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(tt.pod)
			}
			p := NewLimitRanger(lrLookup{"ns": {tt.lr}})
			err := p.Validate(context.Background(), podCreate(tt.pod))
			lrCheckErr(t, err, tt.want)
		})
	}
}

func TestLimitRangerValidateClaims(t *testing.T) {
	lr := lrRange(corev1.LimitRangeItem{Type: corev1.LimitTypePersistentVolumeClaim, Min: lrList("storage", "1Gi"), Max: lrList("storage", "2Gi")})
	tests := []struct {
		name    string
		op      Operation
		request corev1.ResourceList
		want    string
	}{
		{"within", Create, lrList("storage", "1500Mi"), ""},
		{"below min", Create, lrList("storage", "500Mi"), `persistentvolumeclaims "x" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi`},
		{"above max", Create, lrList("storage", "3Gi"), `persistentvolumeclaims "x" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 3Gi`},
		{"expansion above max", Update, lrList("storage", "3Gi"), `persistentvolumeclaims "x" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 3Gi`},
		{"no request", Create, nil, `persistentvolumeclaims "x" is forbidden: [minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified, maximum storage usage per PersistentVolumeClaim is 2Gi.  No request is specified]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x"}}
			pvc.Spec.Resources.Requests = tt.request
			a := &Attributes{Operation: tt.op, Resource: corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims"), Namespace: "ns", Name: "x", Object: pvc}
			lrCheckErr(t, NewLimitRanger(lrLookup{"ns": {lr}}).Validate(context.Background(), a), tt.want)
		})
	}
}

func TestLimitRangerIgnores(t *testing.T) {
	lr := lrRange(corev1.LimitRangeItem{Type: corev1.LimitTypeContainer, Min: lrList("cpu", "1"), Default: lrList("cpu", "1")})
	p := NewLimitRanger(lrLookup{"ns": {lr}})
	pod := lrPod(lrContainer("c", nil, nil))
	for name, a := range map[string]*Attributes{
		"pod update":  {Operation: Update, Resource: corev1.SchemeGroupVersion.WithResource("pods"), Namespace: "ns", Name: "x", Object: pod},
		"subresource": {Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("pods"), Subresource: "binding", Namespace: "ns", Name: "x", Object: pod},
		"other ns":    {Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("pods"), Namespace: "other", Name: "x", Object: pod},
	} {
		if err := p.Admit(context.Background(), a); err != nil {
			t.Errorf("%s: Admit: %v", name, err)
		}
		if err := p.Validate(context.Background(), a); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
	if pod.Spec.Containers[0].Resources.Limits != nil || pod.Annotations != nil {
		t.Errorf("pod changed: %+v", pod)
	}
}

func lrCheckErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v, want Forbidden", err)
	}
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err.Error(), want)
	}
}

func lrEqual(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

// growingLookup returns no LimitRange on its first call and one after, as
// a cache that takes in a new range between two reads.
type growingLookup struct {
	calls int
	lr    *corev1.LimitRange
}

func (g *growingLookup) ListLimitRanges(string) []*corev1.LimitRange {
	g.calls++
	if g.calls == 1 {
		return nil
	}
	return []*corev1.LimitRange{g.lr}
}

// A LimitRange that reaches the cache between the mutating and the
// validating phase of one request must not refuse the pod it did not
// default: both phases judge by one read.
func TestLimitRangerReadsOncePerRequest(t *testing.T) {
	lookup := &growingLookup{lr: lrRange(corev1.LimitRangeItem{
		Type: corev1.LimitTypeContainer, Min: lrList("cpu", "50m"),
		DefaultRequest: lrList("cpu", "100m"),
	})}
	p := NewLimitRanger(lookup)
	a := &Attributes{Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("pods"), Namespace: "ns",
		Object: lrPod(lrContainer("c", nil, nil))}
	if err := p.Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(context.Background(), a); err != nil {
		t.Errorf("validation with a range admission did not see: %v", err)
	}
	if lookup.calls != 1 {
		t.Errorf("%d lookups for one request, want 1", lookup.calls)
	}
}
