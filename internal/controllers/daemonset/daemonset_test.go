package daemonset

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func tolerates(tmpl *corev1.PodTemplateSpec, key string, effect corev1.TaintEffect) bool {
	for _, tol := range tmpl.Spec.Tolerations {
		if tol.Key == key && tol.Effect == effect && tol.Operator == corev1.TolerationOpExists {
			return true
		}
	}
	return false
}

// TestPodTemplateTolerations checks the tolerations upstream's
// AddOrUpdateDaemonPodTolerations gives every daemon pod, and the
// network-unavailable one only host-network pods get.
func TestPodTemplateTolerations(t *testing.T) {
	ds := &appsv1.DaemonSet{}
	tmpl := podTemplate(ds)
	for _, want := range []struct {
		key    string
		effect corev1.TaintEffect
	}{
		{corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute},
		{corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute},
		{corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule},
		{corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule},
		{corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule},
		{corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule},
	} {
		if !tolerates(tmpl, want.key, want.effect) {
			t.Errorf("daemon pod does not tolerate %s:%s", want.key, want.effect)
		}
	}
	if tolerates(tmpl, corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule) {
		t.Error("pod-network daemon pod tolerates network-unavailable")
	}
	if tolerates(tmpl, corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule) {
		t.Error("daemon pod tolerates not-ready:NoSchedule; upstream waits for the node to be ready")
	}
	if len(ds.Spec.Template.Spec.Tolerations) != 0 {
		t.Error("DaemonSet's own template modified")
	}

	ds.Spec.Template.Spec.HostNetwork = true
	if !tolerates(podTemplate(ds), corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule) {
		t.Error("host-network daemon pod does not tolerate network-unavailable")
	}
	if tolerates(podTemplate(&appsv1.DaemonSet{}), corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule) {
		t.Error("host-network toleration leaked into the shared defaults")
	}
}

// TestPlacement follows upstream's nodeShouldRunDaemonPod: untolerated
// NoSchedule taints stop new daemon pods but keep running ones; untolerated
// NoExecute taints and unmatched node selectors remove them.
func TestPlacement(t *testing.T) {
	noSched := func(key string) corev1.Taint { return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule} }
	for _, tc := range []struct {
		name            string
		taints          []corev1.Taint
		selector        map[string]string
		runWant, keepIt bool
	}{
		{name: "untainted", runWant: true, keepIt: true},
		{name: "memory pressure is tolerated", taints: []corev1.Taint{noSched(corev1.TaintNodeMemoryPressure)}, runWant: true, keepIt: true},
		{name: "cordoned is tolerated", taints: []corev1.Taint{noSched(corev1.TaintNodeUnschedulable)}, runWant: true, keepIt: true},
		{name: "unreachable NoExecute is tolerated", taints: []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}}, runWant: true, keepIt: true},
		{name: "not ready: no new pod, running one stays", taints: []corev1.Taint{noSched(corev1.TaintNodeNotReady)}, keepIt: true},
		{name: "network unavailable without host network", taints: []corev1.Taint{noSched(corev1.TaintNodeNetworkUnavailable)}, keepIt: true},
		{name: "PreferNoSchedule ignored", taints: []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}}, runWant: true, keepIt: true},
		{name: "untolerated NoExecute", taints: []corev1.Taint{noSched(corev1.TaintNodeNotReady), {Key: "x", Effect: corev1.TaintEffectNoExecute}}},
		{name: "selector does not match", selector: map[string]string{"role": "gpu"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := &appsv1.DaemonSet{}
			ds.Spec.Template.Spec.NodeSelector = tc.selector
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{Taints: tc.taints}}
			run, keep := placement(podTemplate(ds), node)
			if run != tc.runWant || keep != tc.keepIt {
				t.Errorf("run, keep = %v, %v; want %v, %v", run, keep, tc.runWant, tc.keepIt)
			}
		})
	}
}

func TestKeptPods(t *testing.T) {
	at := func(name string, sec int64, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(sec, 0)},
			Status:     corev1.PodStatus{Phase: phase},
		}
	}
	remove := keptPods([]*corev1.Pod{
		at("newer", 20, corev1.PodRunning), at("oldest", 10, corev1.PodRunning), at("failed", 5, corev1.PodFailed),
	})
	names := map[string]bool{}
	for _, p := range remove {
		names[p.Name] = true
	}
	if len(remove) != 2 || !names["newer"] || !names["failed"] {
		t.Fatalf("removed %v, want the failed pod and the newer duplicate", names)
	}
	if len(keptPods([]*corev1.Pod{at("only", 10, corev1.PodRunning)})) != 0 {
		t.Fatal("the only running pod removed")
	}
}
