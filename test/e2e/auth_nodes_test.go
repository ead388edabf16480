package e2e

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestAuthNodeIsolation joins a second node and proves the Node authorizer
// and NodeRestriction: each node's own credential reads the Secret of a
// pod bound to it and is refused (403) the other node's, and a node may
// not modify another node's Node object.
func TestAuthNodeIsolation(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e9", "--cluster-cidr", "10.67.0.0/16",
		"--dns-port", strconv.Itoa(freePort(t)),
		"--ingress-http-port", strconv.Itoa(freePort(t)), "--ingress-https-port", strconv.Itoa(freePort(t)))
	k := c.kubectl()
	const ns, nodeB = "iso-e2e", "e2e-node-b"

	token, server, hash := joinToken(t, c.dataDir)
	agentDir, err := os.MkdirTemp("", "skiff-e2e-agent")
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(agentDir, "join-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := &process{t: t, name: "skiff agent", args: []string{"agent", "--data-dir", agentDir, "--node-name", nodeB,
		"--server", server, "--token-file", tokenFile, "--ca-cert-hash", hash,
		"--kubelet-port", strconv.Itoa(freePort(t)), "--cni-bridge", "skiffe2ea", "--disable-proxy", "--disable-dns", "--disable-ingress",
		"--pod-log-dir", filepath.Join(agentDir, "log"), "--images-dir", testImages(t)}}
	t.Cleanup(func() {
		agent.terminate(60 * time.Second)
		_ = exec.Command(skiffBin(t), "killall", "--data-dir", agentDir).Run()
		os.RemoveAll(agentDir)
	})
	agent.launch(90*time.Second, func() error {
		return nodeReady(k, nodeB)
	})

	nk := kubectl{t: t, bin: k.bin, kubeconfig: derivedKubeconfig(t, c.kubeconfig, ns, false)}
	k.must("create", "namespace", ns)
	nk.must("create", "secret", "generic", "secret-a", "--from-literal=v=on-a")
	nk.must("create", "secret", "generic", "secret-b", "--from-literal=v=on-b")
	waitFor(t, func() bool { _, err := nk.run("", "get", "serviceaccount", "default"); return err == nil },
		"the default ServiceAccount in a new namespace")
	applyYAML(nk, `
apiVersion: v1
kind: Pod
metadata: {name: on-a}
spec:
  nodeName: `+c.node+`
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sh, -c, 'cat /s/v; sleep 3600'], volumeMounts: [{name: s, mountPath: /s}]}]
  volumes: [{name: s, secret: {secretName: secret-a}}]
---
apiVersion: v1
kind: Pod
metadata: {name: on-b}
spec:
  nodeName: `+nodeB+`
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sh, -c, 'cat /s/v; sleep 3600'], volumeMounts: [{name: s, mountPath: /s}]}]
  volumes: [{name: s, secret: {secretName: secret-b}}]
`)
	// Running means each kubelet fetched its pod's Secret with its own
	// node credential.
	for _, pod := range []string{"on-a", "on-b"} {
		waitPod(t, nk, pod, 90*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
	}

	nodes := []struct {
		name, kubeconfig string
		own, ownValue    string // the Secret of the node's pod
		other            string // the other node's pod's Secret
	}{
		{c.node, filepath.Join(c.dataDir, "agent", "kubelet.kubeconfig"), "secret-a", "on-a", "secret-b"},
		{nodeB, filepath.Join(agentDir, "kubelet.kubeconfig"), "secret-b", "on-b", "secret-a"},
	}
	for _, n := range nodes {
		t.Run(n.name, func(t *testing.T) {
			nodeK := kubectl{t: t, bin: k.bin, kubeconfig: n.kubeconfig}
			user := `User "system:node:` + n.name + `"`
			out, err := nodeK.run("", "get", "secret", n.own, "-n", ns, "-o", "jsonpath={.data.v}")
			if want := base64.StdEncoding.EncodeToString([]byte(n.ownValue)); err != nil || out != want {
				t.Errorf("%s reads %s of its own pod: %v %q, want %q", n.name, n.own, err, out, want)
			}
			out, err = nodeK.run("", "get", "secret", n.other, "-n", ns)
			forbidden(t, n.name+" reads the other node's pod's Secret", out, err, user,
				`cannot get resource "secrets" in API group "" in the namespace "`+ns+`"`)
			out, err = nodeK.run("", "get", "secrets", "-n", ns)
			forbidden(t, n.name+" lists Secrets", out, err, user, `cannot list resource "secrets"`)
		})
	}

	// NodeRestriction: node B may not change node A.
	nodeBK := kubectl{t: t, bin: k.bin, kubeconfig: nodes[1].kubeconfig}
	out, err := nodeBK.run("", "label", "node", c.node, "e2e/hijacked=true")
	forbidden(t, "node B labels node A", out, err, `is not allowed to modify node "`+c.node+`"`)
}
