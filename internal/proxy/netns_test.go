package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
)

// testNetns creates a network namespace for a real iptables run, skipping
// unless this machine allows it (root, iproute2, iptables).
func testNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"ip", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "skiff-proxy-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	inNS(t, name, "ip", "link", "set", "lo", "up")
	return name
}

func inNS(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestRealIptablesInNetns(t *testing.T) {
	ns := testNetns(t)
	runner := ExecRunner{Prefix: []string{"ip", "netns", "exec", ns}}
	// The endpoint: busybox httpd on a veth address (no dummy module here).
	inNS(t, ns, "ip", "link", "add", "ep0", "type", "veth", "peer", "name", "ep1")
	inNS(t, ns, "ip", "link", "set", "ep1", "up")
	inNS(t, ns, "ip", "addr", "add", "10.42.0.5/32", "dev", "ep0")
	inNS(t, ns, "ip", "link", "set", "ep0", "up")
	// Like a node's default route: locally sent packets to service IPs
	// need a route before the nat OUTPUT chain sees them.
	inNS(t, ns, "ip", "route", "add", "10.96.0.0/12", "dev", "ep0")
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("through the service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpd := exec.Command("ip", "netns", "exec", ns, busybox, "httpd", "-f", "-p", "10.42.0.5:8080", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = httpd.Process.Kill(); _ = httpd.Wait() })
	// A rule Skiff did not write, which must survive.
	inNS(t, ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-d", "192.0.2.99", "-j", "RETURN")

	svc := service("web", "10.96.0.50")
	// A sticky service too: iptables must accept the recent-module rules.
	sticky := service("sticky", "10.96.0.51", func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP })
	client := fake.NewSimpleClientset(svc, slice("web", 8080, ep{"10.42.0.5", "node-a", true, false}),
		sticky, slice("sticky", 8080, ep{"10.42.0.5", "node-a", true, false}, ep{"10.42.0.6", "node-a", true, false}))
	p, err := New(Config{Client: client, NodeName: "node-a", ClusterCIDR: "10.42.0.0/16", Runner: runner})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); p.factory.Shutdown() }()
	p.factory.Start(ctx.Done())
	p.factory.WaitForCacheSync(ctx.Done())
	for i := 0; i < 2; i++ {
		if err := p.Sync(ctx); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	saved := inNS(t, ns, "iptables-save")
	for _, j := range jumps {
		if n := strings.Count(saved, "-A "+j.chain+" "+j.rule); n != 1 {
			t.Errorf("jump %s %q appears %d times after two syncs", j.chain, j.rule, n)
		}
	}
	if !strings.Contains(saved, "-A POSTROUTING -d 192.0.2.99/32 -j RETURN") {
		t.Error("a foreign rule was removed")
	}

	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command("ip", "netns", "exec", ns, "timeout", "3", busybox, "wget", "-q", "-O-", "http://10.96.0.50/").CombinedOutput()
		if err == nil {
			body = string(out)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "through the service\n" {
		t.Fatalf("ClusterIP did not reach the endpoint: %q", body)
	}

	// The service loses its endpoints: the old chains go, clients are
	// refused at once.
	if err := client.DiscoveryV1().EndpointSlices("ns").Delete(ctx, "web-x", deleteOpts); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { l, _ := p.slices.List(everythingSel); return len(l) == 1 })
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	saved = inNS(t, ns, "iptables-save")
	if strings.Contains(saved, chainName(serviceChain, "ns/web:http")) {
		t.Error("stale service chain kept after its endpoints went")
	}
	start := time.Now()
	out, err := exec.Command("ip", "netns", "exec", ns, "timeout", "5", busybox, "wget", "-q", "-O-", "http://10.96.0.50/").CombinedOutput()
	if err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("a service without endpoints should refuse at once: %v after %s (%q)", err, time.Since(start), out)
	}

	if err := Cleanup(ctx, runner); err != nil {
		t.Fatal(err)
	}
	saved = inNS(t, ns, "iptables-save")
	if strings.Contains(saved, chainPrefix) {
		t.Errorf("Cleanup left Skiff rules:\n%s", saved)
	}
	if !strings.Contains(saved, "-A POSTROUTING -d 192.0.2.99/32 -j RETURN") {
		t.Error("Cleanup removed a foreign rule")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	deleteOpts    = metav1.DeleteOptions{}
	everythingSel = labels.Everything()
)
