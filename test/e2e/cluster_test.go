// Package e2e drives a real `skiff server` with the machine's real kubectl,
// as a user would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kubectlVersions are the kubectl binaries every suite runs with: the
// oldest and newest this project supports.
var kubectlVersions = map[string]string{
	"1.27": "/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
	"1.33": "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
}

func skiffBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("SKIFF_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "skiff")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/skiff")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build skiff: %v\n%s", err, out)
	}
	return bin
}

func kubectlBin(t *testing.T, version string) string {
	t.Helper()
	p := kubectlVersions[version]
	if _, err := os.Stat(p); err != nil {
		if version == "1.33" {
			if lp, err := exec.LookPath("kubectl"); err == nil {
				return lp
			}
		}
		t.Skipf("kubectl %s not installed at %s", version, p)
	}
	return p
}

// process is a skiff process a test runs, with its output kept for the
// failure message.
type process struct {
	t    *testing.T
	name string
	args []string
	cmd  *exec.Cmd
	logs *syncBuffer
	// exited is closed once the process has been waited for.
	exited chan struct{}
	// binary runs instead of skiff (e.g. nsenter, with skiff in args).
	binary string
}

// launch starts the process and polls ready until it returns nil; the
// last error it returned says, on a timeout, what was still missing.
func (p *process) launch(timeout time.Duration, ready func() error) {
	p.t.Helper()
	p.logs = &syncBuffer{}
	bin := p.binary
	if bin == "" {
		bin = skiffBin(p.t)
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() { _ = p.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(timeout)
	var notReady error
	for time.Now().Before(deadline) {
		if notReady = ready(); notReady == nil {
			return
		}
		select {
		case <-exited:
			p.t.Fatalf("%s exited before it was ready; logs:\n%s", p.name, p.logText())
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.t.Fatalf("%s did not become ready within %s: %v; logs:\n%s", p.name, timeout, notReady, p.logText())
}

// logText is the process's output for a failure message, without
// client-go's line per informer about the mutation detector, which would
// crowd out the lines that explain the failure.
func (p *process) logText() string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(p.logs.String(), "\n") {
		if !strings.Contains(line, "Mutation detector is enabled") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// nodeReady returns nil once the node's Ready condition is True, or else
// the condition (or kubectl's error) as the reason.
func nodeReady(k kubectl, node string) error {
	out, err := k.run("", "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")]}`)
	if err != nil {
		return err
	}
	var cond struct{ Status, Reason, Message string }
	if out == "" {
		return fmt.Errorf("node %s has no Ready condition", node)
	}
	if err := json.Unmarshal([]byte(out), &cond); err != nil {
		return fmt.Errorf("node %s Ready condition %q: %w", node, out, err)
	}
	if cond.Status != "True" {
		return fmt.Errorf("node %s Ready=%s %s: %s", node, cond.Status, cond.Reason, cond.Message)
	}
	return nil
}

// terminate sends SIGTERM and waits for a clean exit.
func (p *process) terminate(timeout time.Duration) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if !p.cmd.ProcessState.Success() {
			p.t.Errorf("%s exited with %v; logs:\n%s", p.name, p.cmd.ProcessState, p.logText())
		}
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("%s did not stop on SIGTERM; logs:\n%s", p.name, p.logText())
	}
	p.cmd = nil
}

// server is a running `skiff server` process.
type server struct {
	process
	dataDir    string
	kubeconfig string
}

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	s := &server{process: process{t: t, name: "skiff server"}, dataDir: dataDir, kubeconfig: filepath.Join(dataDir, "admin.kubeconfig")}
	s.args = append([]string{"server", "--data-dir", dataDir, "--secure-port", strconv.Itoa(freePort(t))}, extra...)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.launch(60*time.Second, func() error {
		if _, err := os.Stat(s.kubeconfig); err != nil {
			return err
		}
		out, err := exec.Command(kubectlBin(s.t, "1.33"), "--kubeconfig", s.kubeconfig, "get", "--raw", "/readyz").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			return fmt.Errorf("/readyz: %v: %s", err, out)
		}
		return nil
	})
}

func (s *server) stop() { s.terminate(20 * time.Second) }

// kubectl runs one kubectl command against the server.
type kubectl struct {
	t          *testing.T
	bin        string
	kubeconfig string
}

func (k kubectl) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// must runs kubectl and fails the test on error.
func (k kubectl) must(args ...string) string {
	k.t.Helper()
	out, err := k.run("", args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k kubectl) mustStdin(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.run(stdin, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

func contains(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("output does not contain %q:\n%s", w, out)
		}
	}
}

// kill ends the process abruptly (SIGKILL), as a crash would.
func (p *process) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}
