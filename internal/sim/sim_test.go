package sim

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func pod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
}

func TestSimNodesAndPods(t *testing.T) {
	srv := testserver.Start(t)
	client := srv.Client
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	before := simGoroutines()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			RESTConfig: srv.Config, Nodes: 3, LeaseInterval: 500 * time.Millisecond, StatusInterval: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()

	// Nodes register Ready, with capacity and a pod CIDR of their own.
	testserver.Eventually(t, "3 ready sim nodes", func() bool {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=skiff-sim"})
		if err != nil || len(nodes.Items) != 3 {
			return false
		}
		for _, n := range nodes.Items {
			if !nodeReady(&n) || n.Spec.PodCIDR == "" || len(n.Spec.Taints) != 0 ||
				n.Status.Allocatable.Cpu().Value() != 32 || n.Status.Allocatable.Pods().Value() != 110 ||
				n.Labels["kubernetes.io/hostname"] != n.Name {
				return false
			}
		}
		return true
	})
	// Leases are renewed: renewTime moves on.
	var first time.Time
	testserver.Eventually(t, "lease created", func() bool {
		l, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "sim-1", metav1.GetOptions{})
		if err == nil {
			first = l.Spec.RenewTime.Time
		}
		return err == nil
	})
	testserver.Eventually(t, "lease renewed", func() bool {
		l, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "sim-1", metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first) && *l.Spec.HolderIdentity == "sim-1"
	})
	// The Ready heartbeat is rewritten too.
	n, _ := client.CoreV1().Nodes().Get(ctx, "sim-2", metav1.GetOptions{})
	hb := readyCondition(n).LastHeartbeatTime.Time
	testserver.Eventually(t, "node status heartbeat", func() bool {
		n, err := client.CoreV1().Nodes().Get(ctx, "sim-2", metav1.GetOptions{})
		return err == nil && readyCondition(n).LastHeartbeatTime.After(hb)
	})

	// A pod bound to a sim node runs and becomes Ready with an IP from the
	// node's range.
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod("web", "sim-0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node0, _ := client.CoreV1().Nodes().Get(ctx, "sim-0", metav1.GetOptions{})
	cidr := netip.MustParsePrefix(node0.Spec.PodCIDR)
	testserver.Eventually(t, "pod running and ready", func() bool {
		p, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning || p.Status.StartTime == nil {
			return false
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !cidr.Contains(ip) || p.Status.HostIP == "" {
			return false
		}
		ready := 0
		for _, c := range p.Status.Conditions {
			switch c.Type {
			case corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady:
				if c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == 4 && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready &&
			p.Status.ContainerStatuses[0].State.Running != nil
	})
	// A second pod on the same node gets a different IP.
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod("web2", "sim-0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "second pod running with its own IP", func() bool {
		p1, err1 := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		p2, err2 := client.CoreV1().Pods("default").Get(ctx, "web2", metav1.GetOptions{})
		return err1 == nil && err2 == nil && p2.Status.Phase == corev1.PodRunning && p2.Status.PodIP != "" && p2.Status.PodIP != p1.Status.PodIP
	})

	// A Job's pod succeeds, its container exited 0.
	job := pod("job-x", "sim-1")
	job.Spec.RestartPolicy = corev1.RestartPolicyNever
	job.OwnerReferences = []metav1.OwnerReference{{APIVersion: batchv1.SchemeGroupVersion.String(), Kind: "Job", Name: "x", UID: "1234", Controller: ptr.To(true)}}
	if _, err := client.CoreV1().Pods("default").Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "job pod succeeded", func() bool {
		p, err := client.CoreV1().Pods("default").Get(ctx, "job-x", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodSucceeded && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].State.Terminated != nil && p.Status.ContainerStatuses[0].State.Terminated.ExitCode == 0
	})
	// A plain Always pod with the annotation keeps running; the annotation
	// only counts for pods that can complete.
	always := pod("always", "sim-2")
	always.Annotations = map[string]string{RunSecondsAnnotation: "0"}
	if _, err := client.CoreV1().Pods("default").Create(ctx, always, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "always pod running", func() bool {
		p, err := client.CoreV1().Pods("default").Get(ctx, "always", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	time.Sleep(300 * time.Millisecond)
	if p, _ := client.CoreV1().Pods("default").Get(ctx, "always", metav1.GetOptions{}); p.Status.Phase != corev1.PodRunning {
		t.Errorf("restartPolicy Always pod went %s", p.Status.Phase)
	}

	// A deleted pod goes away: the sim finishes its graceful deletion.
	if err := client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "deleted pod gone", func() bool {
		_, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// Pods on nodes that are not the sim's are left alone.
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod("other", "real-node"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if p, _ := client.CoreV1().Pods("default").Get(context.Background(), "other", metav1.GetOptions{}); p.Status.Phase == corev1.PodRunning {
		t.Error("sim ran a pod of a node it does not own")
	}
	// Nodes stay registered.
	if nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: "type=skiff-sim"}); err != nil || len(nodes.Items) != 3 {
		t.Errorf("nodes after stop: %v, %v", nodes, err)
	}
	// Every goroutine Run started has ended (a few of the client's may
	// take a moment).
	// Every goroutine Run started has ended. (The count of all goroutines
	// says nothing: the server starts watch caches and connections.)
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := simGoroutines()
		if len(left) <= len(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Run: %d, before %d:\n%s", len(left), len(before), strings.Join(left, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// simGoroutines returns the stacks of goroutines of the kinds Run starts.
func simGoroutines() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "TestSim") {
			continue
		}
		for _, marker := range []string{"skiff/internal/sim.", "client-go/tools/cache.", "client-go/util/workqueue.", "client-go/informers."} {
			if strings.Contains(g, marker) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

func readyCondition(n *corev1.Node) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func nodeReady(n *corev1.Node) bool { return readyCondition(n).Status == corev1.ConditionTrue }

// A second run takes over the nodes of the first and the pods running on
// them keep their addresses.
func TestSimReusesNodes(t *testing.T) {
	srv := testserver.Start(t)
	client := srv.Client
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runFor := func(check func(ctx context.Context)) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Config{RESTConfig: srv.Config, Nodes: 1, NamePrefix: "r-", LeaseInterval: 200 * time.Millisecond, Logger: log})
		}()
		check(ctx)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var ip string
	runFor(func(ctx context.Context) {
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod("p", "r-0"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		testserver.Eventually(t, "pod running", func() bool {
			p, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
			ip = p.Status.PodIP
			return err == nil && p.Status.Phase == corev1.PodRunning
		})
	})
	runFor(func(ctx context.Context) {
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod("q", "r-0"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		testserver.Eventually(t, "second pod running with another IP", func() bool {
			p, err := client.CoreV1().Pods("default").Get(ctx, "q", metav1.GetOptions{})
			return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ip
		})
	})
}
