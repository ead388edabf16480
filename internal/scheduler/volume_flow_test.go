package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
	"github.com/skiff-dev/skiff/internal/volumematch"
)

// startWithBindTimeout is start with a short volume bind timeout.
func startWithBindTimeout(t *testing.T, timeout time.Duration) *env {
	t.Helper()
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := New(Config{Client: ts.Client})
	s.vols.bindTimeout = timeout
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{t: t, client: ts.Client, ctx: ctx}
}

func claimPod(name string, claims ...string) *corev1.Pod {
	p := pod(name, "", "")
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func (e *env) claim(c *corev1.PersistentVolumeClaim) {
	e.t.Helper()
	c.UID = ""
	if _, err := e.client.CoreV1().PersistentVolumeClaims("default").Create(e.ctx, c, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) class(sc *storagev1.StorageClass) {
	e.t.Helper()
	if _, err := e.client.StorageV1().StorageClasses().Create(e.ctx, sc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// selectedNode waits for the claim's selected-node annotation.
func (e *env) selectedNode(name string) string {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := e.client.CoreV1().PersistentVolumeClaims("default").Get(e.ctx, name, metav1.GetOptions{})
		if err == nil && c.Annotations[annSelectedNode] != "" {
			return c.Annotations[annSelectedNode]
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("claim %s never got a selected node", name)
	return ""
}

// provisionAndBind stands in for the provisioner and the PV controller:
// a PV pinned to the selected node, bound to the claim.
func (e *env) provisionAndBind(claimName, nodeName string) {
	e.t.Helper()
	c, err := e.client.CoreV1().PersistentVolumeClaims("default").Get(e.ctx, claimName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	pv := testPV("pvc-"+string(c.UID), volumematch.ClaimClass(c), "1Gi", nodeName)
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: c.Namespace, Name: c.Name, UID: c.UID}
	pv, err = e.client.CoreV1().PersistentVolumes().Create(e.ctx, pv, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.bindClaim(c, pv.Name)
}

func (e *env) bindClaim(c *corev1.PersistentVolumeClaim, pvName string) {
	e.t.Helper()
	c.Spec.VolumeName = pvName
	metav1.SetMetaDataAnnotation(&c.ObjectMeta, annBindCompleted, "yes")
	c, err := e.client.CoreV1().PersistentVolumeClaims("default").Update(e.ctx, c, metav1.UpdateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	c.Status.Phase = corev1.ClaimBound
	if _, err := e.client.CoreV1().PersistentVolumeClaims("default").UpdateStatus(e.ctx, c, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func TestClaimsThatBlockScheduling(t *testing.T) {
	e := start(t)
	for _, n := range []string{"n1", "n2", "n3"} {
		e.node(n, "4", map[string]string{"kubernetes.io/hostname": n})
	}
	e.pod(claimPod("missing", "nope"))
	if msg, want := e.unschedulable("missing"), `0/3 nodes are available: persistentvolumeclaim "nope" not found.`; msg != want {
		t.Fatalf("message %q, want %q", msg, want)
	}
	// Creating the claim (Immediate: no class) wakes the pod, which now
	// waits for the PV controller.
	e.claim(testClaim("nope", "", "1Gi"))
	deadline := time.Now().Add(15 * time.Second)
	for e.unschedulable("missing") != "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims." {
		if time.Now().After(deadline) {
			t.Fatalf("message never changed: %q", e.unschedulable("missing"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Binding it to a PV on n2 places the pod there.
	pv := testPV("static", "", "1Gi", "n2")
	c, _ := e.client.CoreV1().PersistentVolumeClaims("default").Get(e.ctx, "nope", metav1.GetOptions{})
	pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "nope", UID: c.UID}
	if _, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.bindClaim(c, "static")
	if got := e.placement("missing"); got != "n2" {
		t.Fatalf("pod on %s, want n2 (its PV's node)", got)
	}

	// A WaitForFirstConsumer claim with no volume and no provisioner.
	e.class(wffc("manual", notSupportedProvision))
	e.claim(testClaim("manual-claim", "manual", "1Gi"))
	e.pod(claimPod("manual-pod", "manual-claim"))
	if msg, want := e.unschedulable("manual-pod"), "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."; msg != want {
		t.Fatalf("message %q, want %q", msg, want)
	}
	// A fitting PV on n3 appears: the scheduler reserves it (claimRef) and
	// the pod follows it once the PV controller's part is done.
	created, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, testPV("local-n3", "manual", "5Gi", "n3"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Status is the PV controller's to set; this test stands in for it.
	created.Status.Phase = corev1.VolumeAvailable
	if _, err := e.client.CoreV1().PersistentVolumes().UpdateStatus(e.ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		pv, err := e.client.CoreV1().PersistentVolumes().Get(e.ctx, "local-n3", metav1.GetOptions{})
		if err == nil && pv.Spec.ClaimRef != nil {
			if pv.Spec.ClaimRef.Name != "manual-claim" {
				t.Fatalf("claimRef %+v", pv.Spec.ClaimRef)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PV never reserved for the claim")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, _ = e.client.CoreV1().PersistentVolumeClaims("default").Get(e.ctx, "manual-claim", metav1.GetOptions{})
	e.bindClaim(c, "local-n3")
	if got := e.placement("manual-pod"); got != "n3" {
		t.Fatalf("manual-pod on %s, want n3", got)
	}
}

func TestWaitForFirstConsumerProvisioning(t *testing.T) {
	e := start(t)
	e.node("n1", "4", map[string]string{"kubernetes.io/hostname": "n1"})
	e.node("n2", "4", map[string]string{"kubernetes.io/hostname": "n2"}, func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectNoSchedule}}
	})
	e.class(wffc("local-path", "skiff.dev/local-path"))
	e.claim(testClaim("data", "local-path", "1Gi"))
	e.pod(claimPod("db", "data"))
	node := e.selectedNode("data")
	if node != "n1" {
		t.Fatalf("selected node %s, want n1 (n2 is tainted)", node)
	}
	// The pod waits for the claim to bind.
	if p, _ := e.client.CoreV1().Pods("default").Get(e.ctx, "db", metav1.GetOptions{}); p.Spec.NodeName != "" {
		t.Fatalf("pod bound to %s before its claim", p.Spec.NodeName)
	}
	e.provisionAndBind("data", node)
	if got := e.placement("db"); got != "n1" {
		t.Fatalf("pod on %s, want n1", got)
	}
}

func TestVolumeBindingTimeoutReverts(t *testing.T) {
	e := startWithBindTimeout(t, 2*time.Second)
	e.node("n1", "4", map[string]string{"kubernetes.io/hostname": "n1"})
	e.class(wffc("local-path", "skiff.dev/local-path"))
	e.claim(testClaim("data", "local-path", "1Gi"))
	w, err := e.client.CoreV1().PersistentVolumeClaims("default").Watch(e.ctx, metav1.ListOptions{FieldSelector: "metadata.name=data"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e.pod(claimPod("db", "data"))
	e.selectedNode("data")
	// Nobody provisions: after the timeout the annotation is removed and
	// the failure reported on the pod.
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := e.client.CoreV1().Events("default").List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=db"})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs.Items {
			found = found || (ev.Reason == "FailedScheduling" &&
				strings.Contains(ev.Message, `running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded`))
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no timeout event: %+v", evs.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The failed attempt removed selected-node, so a provisioner would
	// not act on a stale choice.
	annotated, giveUp := false, time.After(10*time.Second)
	for reverted := false; !reverted; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch ended")
			}
			if c, ok := ev.Object.(*corev1.PersistentVolumeClaim); ok {
				_, has := c.Annotations[annSelectedNode]
				annotated = annotated || has
				reverted = annotated && !has
			}
		case <-giveUp:
			t.Fatal("selected-node was never removed after the timeout")
		}
	}
	// The retry selects the node again; this time the claim gets bound.
	e.provisionAndBind("data", e.selectedNode("data"))
	if got := e.placement("db"); got != "n1" {
		t.Fatalf("pod on %s", got)
	}
}

func TestNodeVolumeLimits(t *testing.T) {
	e := start(t)
	e.node("n1", "4", map[string]string{"kubernetes.io/hostname": "n1"})
	one := int32(1)
	if _, err := e.client.StorageV1().CSINodes().Create(e.ctx, &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name: "csi.example.com", NodeID: "n1", Allocatable: &storagev1.VolumeNodeResources{Count: &one},
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1", "v2"} {
		pv := testPV(name, "", "1Gi", "")
		pv.Spec.HostPath = nil
		pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "csi.example.com", VolumeHandle: name}
		c := testClaim("c-"+name, "", "1Gi")
		e.claim(c)
		c, _ = e.client.CoreV1().PersistentVolumeClaims("default").Get(e.ctx, c.Name, metav1.GetOptions{})
		pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: c.Name, UID: c.UID}
		if _, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.bindClaim(c, name)
	}
	e.pod(claimPod("first", "c-v1"))
	e.placement("first")
	e.pod(claimPod("second", "c-v2"))
	if msg, want := e.unschedulable("second"), "0/1 nodes are available: 1 node(s) exceed max volume count."; msg != want {
		t.Fatalf("message %q, want %q", msg, want)
	}
	// Sharing the volume already on the node needs no new attachment.
	e.pod(claimPod("sharer", "c-v1"))
	e.placement("sharer")
}

func TestParallelPodsDoNotShareAVolume(t *testing.T) {
	e := start(t)
	e.node("n1", "4", map[string]string{"kubernetes.io/hostname": "n1"})
	e.class(wffc("manual", notSupportedProvision))
	pv, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, testPV("only", "manual", "1Gi", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Status.Phase = corev1.VolumeAvailable
	if _, err := e.client.CoreV1().PersistentVolumes().UpdateStatus(e.ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.claim(testClaim("a", "manual", "1Gi"))
	e.claim(testClaim("b", "manual", "1Gi"))
	// Both pods are scheduled back to back; nobody completes the binding,
	// so the first keeps its reservation while the second is tried.
	e.pod(claimPod("pa", "a"))
	e.pod(claimPod("pb", "b"))
	deadline := time.Now().Add(15 * time.Second)
	var loser string
	for loser == "" {
		for _, name := range []string{"pa", "pb"} {
			p, err := e.client.CoreV1().Pods("default").Get(e.ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Status.Conditions {
				// The scheduler's claim informer may not have seen the claim
				// yet; the pod is retried when it does.
				if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonUnschedulable && !strings.Contains(c.Message, "not found") {
					loser = name
					if want := "0/1 nodes are available: 1 node(s) didn't find available persistent volumes to bind."; c.Message != want {
						t.Fatalf("%s: %q, want %q", name, c.Message, want)
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("neither pod reported the volume taken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := e.client.CoreV1().PersistentVolumes().Get(e.ctx, "only", metav1.GetOptions{})
	if err != nil || got.Spec.ClaimRef == nil {
		t.Fatalf("PV not reserved: %v %+v", err, got.Spec.ClaimRef)
	}
	if winner := map[string]string{"pa": "b", "pb": "a"}[loser]; got.Spec.ClaimRef.Name != winner {
		t.Fatalf("PV reserved for %s, want %s (the pod that was not refused)", got.Spec.ClaimRef.Name, winner)
	}
}
