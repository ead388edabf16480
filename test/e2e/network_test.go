package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServicesAndDNS reaches pods through a Service's ClusterIP and DNS
// name from another pod, through its NodePort from the host, resolves
// headless and stateful names, and watches traffic leave an endpoint whose
// pod turns unready.
func TestServicesAndDNS(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e3", "--cluster-cidr", "10.75.0.0/16", "--dns-port", strconv.Itoa(freePort(t)))
	k := c.kubectl()
	applyYAML(k, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www']
        readinessProbe:
          exec: {command: [cat, /tmp/ready]}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-headless}
spec:
  clusterIP: None
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: sql, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: db, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`)
	k.must("rollout", "status", "deployment/echo", "--timeout=90s")
	k.must("rollout", "status", "statefulset/db", "--timeout=90s")
	waitPod(t, k, "client", 60*time.Second, "Ready", func(p podJSON) bool { return p.condition("Ready") == "True" })
	pods := strings.Fields(k.must("get", "pods", "-l", "app=echo", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(pods) != 2 {
		t.Fatalf("echo pods: %v", pods)
	}

	// hits asks the service n times from the client pod and counts who
	// answered. The proxy syncs at most once a second, so a request right
	// after a change may still miss (and go out the default route): hits
	// retries for a while before it gives up.
	hits := func(url string, n int) map[string]int {
		t.Helper()
		script := fmt.Sprintf("for i in $(seq %d); do wget -q -O- %s; done", n, url)
		var out string
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if out, err = k.run("", "exec", "client", "--", "sh", "-c", script); err == nil {
				got := map[string]int{}
				for _, line := range strings.Fields(out) {
					got[line]++
				}
				return got
			}
		}
		ns, _ := k.run("", "exec", "client", "--", "nslookup", "echo.default.svc.cluster.local")
		svcs, _ := k.run("", "get", "svc,endpointslices", "-A", "-o", "wide")
		rules, _ := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
		t.Fatalf("requests to %s: %v\n%s\nDNS: %s\n%s\nnat rules:\n%s", url, err, lastLines(out, 3), ns, svcs, rules)
		return nil
	}
	var got map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = hits("http://echo/", 30)
		if len(got) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if got[pods[0]] == 0 || got[pods[1]] == 0 {
		t.Errorf("30 requests through the service name reached %v, want both pods %v", got, pods)
	}
	clusterIP := k.must("get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}")
	if got := hits("http://"+clusterIP+"/", 10); len(got) == 0 {
		t.Error("ClusterIP unreachable from a pod")
	}

	// NodePort from the host, on the node's address.
	nodeIP := k.must("get", "node", c.node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	nodePort := k.must("get", "svc", "echo", "-o", "jsonpath={.spec.ports[0].nodePort}")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + nodeIP + ":" + nodePort + "/")
	if err != nil {
		t.Errorf("NodePort %s:%s from the host: %v", nodeIP, nodePort, err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if name := strings.TrimSpace(string(body)); name != pods[0] && name != pods[1] {
			t.Errorf("NodePort answered %q", name)
		}
	}

	// A LoadBalancer service is served on the node's address.
	applyYAML(k, `
apiVersion: v1
kind: Service
metadata: {name: echo-lb}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{name: http, port: 8088, targetPort: 8080}]
`)
	deadline = time.Now().Add(30 * time.Second)
	for k.must("get", "svc", "echo-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}") != nodeIP {
		if time.Now().After(deadline) {
			t.Fatalf("load-balancer ingress never became the node IP %s", nodeIP)
		}
		time.Sleep(200 * time.Millisecond)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + nodeIP + ":8088/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LoadBalancer IP %s:8088 unreachable: %v", nodeIP, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// DNS: the service, the headless service's pods, a stateful pod.
	out := k.must("exec", "client", "--", "nslookup", "echo.default.svc.cluster.local")
	contains(t, out, clusterIP)
	out = k.must("exec", "client", "--", "nslookup", "echo-headless.default.svc.cluster.local")
	for _, p := range pods {
		ip := k.must("get", "pod", p, "-o", "jsonpath={.status.podIP}")
		contains(t, out, ip)
	}
	dbIP := k.must("get", "pod", "db-0", "-o", "jsonpath={.status.podIP}")
	contains(t, k.must("exec", "client", "--", "nslookup", "db-0.db.default.svc.cluster.local"), dbIP)
	if out, err := k.run("", "exec", "client", "--", "nslookup", "nosuch.default.svc.cluster.local"); err == nil || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("a missing service should be NXDOMAIN: %v %q", err, out)
	}

	// One pod turns unready: traffic moves off it.
	k.must("exec", pods[0], "--", "rm", "/tmp/ready")
	waitPod(t, k, pods[0], 30*time.Second, "unready", func(p podJSON) bool { return p.condition("Ready") == "False" })
	deadline = time.Now().Add(20 * time.Second)
	for {
		got = hits("http://echo/", 20)
		if got[pods[0]] == 0 && got[pods[1]] == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s went unready, requests still reached %v", pods[0], got)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
