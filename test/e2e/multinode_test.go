package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// removeStaleNamespaceNodes deletes the bridges and network namespaces of
// an earlier run that was killed before its cleanup ran: a stale bridge
// holding the same subnet would swallow the agents' traffic.
func removeStaleNamespaceNodes() {
	if out, err := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			// "12: skbr0a1b2c: <BROADCAST,...>"
			fields := strings.Fields(line)
			if len(fields) > 1 && strings.HasPrefix(fields[1], "skbr") {
				_ = exec.Command("ip", "link", "delete", strings.TrimSuffix(fields[1], ":")).Run()
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if fields := strings.Fields(line); len(fields) > 0 && strings.HasPrefix(fields[0], "skn") {
				_ = exec.Command("ip", "netns", "delete", fields[0]).Run()
			}
		}
	}
}

// TestThreeNodesInNetworkNamespaces runs a server on the host and three
// agents, each in its own network namespace on a shared bridge (as three
// machines on one LAN): pods reach pods on other nodes directly (host-gw
// routes), a Service spreads over endpoints on every node, DNS answers
// from any node, and a NodePort answers on a node's address.
func TestThreeNodesInNetworkNamespaces(t *testing.T) {
	requireNodeRuntime(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter not installed")
	}
	removeStaleNamespaceNodes()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b[:3])
	br := "skbr" + id
	// A random /24 keeps a run clear of anything a killed run left behind.
	subnet := fmt.Sprintf("172.31.%d", 1+int(b[3])%250)
	gateway := subnet + ".1"
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	sh("ip", "link", "add", br, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", br).Run() })
	sh("ip", "addr", "add", gateway+"/24", "dev", br)
	sh("ip", "link", "set", br, "up")
	var nsNames, nodeIPs []string
	for i := 1; i <= 3; i++ {
		ns := fmt.Sprintf("skn%s-%d", id, i)
		ip := fmt.Sprintf("%s.%d", subnet, 10+i)
		host, inner := fmt.Sprintf("skh%s%d", id, i), fmt.Sprintf("skv%s%d", id, i)
		sh("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
		sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner)
		sh("ip", "link", "set", inner, "netns", ns)
		sh("ip", "link", "set", host, "master", br, "up")
		sh("ip", "netns", "exec", ns, "ip", "addr", "add", ip+"/24", "dev", inner)
		sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
		sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
		sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", gateway)
		nsNames, nodeIPs = append(nsNames, ns), append(nodeIPs, ip)
	}

	srvDir := t.TempDir()
	port := freePort(t)
	srv := &server{process: process{t: t, name: "skiff server"}, dataDir: srvDir, kubeconfig: filepath.Join(srvDir, "admin.kubeconfig")}
	srv.args = []string{"server", "--data-dir", srvDir, "--bind-address", "0.0.0.0", "--secure-port", strconv.Itoa(port), "--cluster-cidr", "10.71.0.0/16"}
	srv.start()
	t.Cleanup(srv.stop)
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: srv.kubeconfig}

	out, err := exec.Command(skiffBin(t), "token", "create", "--data-dir", srvDir).CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	token := regexp.MustCompile(`(?m)^[a-z0-9]{6}\.[a-z0-9]{16}$`).FindString(string(out))
	hash := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(string(out))
	tokenFile := filepath.Join(srvDir, "join-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	serverURL := fmt.Sprintf("https://%s:%d", gateway, port)
	for i, ns := range nsNames {
		dir, err := os.MkdirTemp("", "skiff-mn")
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("mn-%d", i+1)
		netns := "--net=/run/netns/" + ns
		agent := &process{t: t, name: "agent " + name}
		bin := skiffBin(t)
		agent.args = []string{netns, bin, "agent", "--data-dir", dir, "--node-name", name, "--node-ip", nodeIPs[i],
			"--server", serverURL, "--token-file", tokenFile, "--ca-cert-hash", hash, "--cluster-cidr", "10.71.0.0/16",
			"--pod-log-dir", filepath.Join(dir, "log"), "--images-dir", testImages(t)}
		agent.binary = "nsenter"
		t.Cleanup(func() {
			agent.terminate(60 * time.Second)
			_ = exec.Command("nsenter", netns, bin, "killall", "--data-dir", dir).Run()
			os.RemoveAll(dir)
		})
		agent.launch(90*time.Second, func() error {
			return nodeReady(k, name)
		})
	}

	applyYAML(k, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: echo}}}
      containers:
      - name: httpd
        image: busybox
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www']
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: mn-1
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`)
	k.must("rollout", "status", "deployment/echo", "--timeout=120s")
	waitPod(t, k, "client", 60*time.Second, "Ready", func(p podJSON) bool { return p.condition("Ready") == "True" })
	placement := k.must("get", "pods", "-l", "app=echo", "-o", `jsonpath={range .items[*]}{.spec.nodeName}={.status.podIP}={.metadata.name}{"\n"}{end}`)
	names := map[string]bool{}
	for _, line := range strings.Fields(placement) {
		f := strings.Split(line, "=")
		names[f[2]] = true
		if f[0] == "mn-1" {
			continue
		}
		// Pod to pod across nodes, by pod IP.
		var got string
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			got, err = k.run("", "exec", "client", "--", "timeout", "5", "wget", "-q", "-O-", "http://"+f[1]+":8080/")
			if err == nil && strings.TrimSpace(got) == f[2] {
				break
			}
		}
		if err != nil || strings.TrimSpace(got) != f[2] {
			t.Errorf("pod on mn-1 → pod %s on %s (%s): %v %q", f[2], f[0], f[1], err, got)
		}
	}
	if len(names) != 3 {
		t.Fatalf("echo pods: %s", placement)
	}

	// Through the Service name: every endpoint, on every node, answers.
	seen := map[string]bool{}
	deadline := time.Now().Add(40 * time.Second)
	for len(seen) < 3 && time.Now().Before(deadline) {
		got, err := k.run("", "exec", "client", "--", "sh", "-c", "for i in $(seq 15); do wget -q -O- http://echo.default.svc.cluster.local/; done")
		if err == nil {
			for _, n := range strings.Fields(got) {
				seen[n] = true
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("requests through the service reached %v, want all of %v", seen, names)
	}

	// A NodePort on another node's address, from the host.
	nodePort := k.must("get", "svc", "echo", "-o", "jsonpath={.spec.ports[0].nodePort}")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + nodeIPs[2] + ":" + nodePort + "/")
	if err != nil {
		t.Fatalf("NodePort on %s: %v", nodeIPs[2], err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !names[strings.TrimSpace(string(body))] {
		t.Errorf("NodePort answered %q", body)
	}
}
