package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// The burners spin until /tmp/idle exists, then sleep: the test stops the
// load by touching that file in each pod. The CPU limit keeps four of
// them from taking the whole machine while staying far above target.
const hpaManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: burner}
spec:
  replicas: 1
  selector: {matchLabels: {app: burner}}
  template:
    metadata: {labels: {app: burner}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: spin
        image: busybox
        command: [sh, -c, 'while [ ! -e /tmp/idle ]; do :; done; exec sleep 3600']
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 300m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burner}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burner}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 30
`

// TestHorizontalPodAutoscaler: CPU-burning pods make an HPA scale their
// Deployment out within 60 s, kubectl top shows their CPU, and once the
// load stops the Deployment scales back in, held back by the HPA's 30 s
// stabilization window.
func TestHorizontalPodAutoscaler(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2eh", "--cluster-cidr", "10.61.0.0/16")
	k := c.kubectl()
	applyYAML(k, hpaManifest)
	start := time.Now()

	replicas := func() int {
		n, _ := strconv.Atoi(k.must("get", "deployment", "burner", "-o", "jsonpath={.spec.replicas}"))
		return n
	}
	pollFor(t, 60*time.Second, "the HPA to scale the burners out", func() bool { return replicas() > 1 })
	t.Logf("scaled out to %d after %s", replicas(), time.Since(start).Round(time.Second))
	contains(t, k.must("get", "events", "--field-selector", "reason=SuccessfulRescale", "-o", "jsonpath={.items[*].message}"),
		"reason: cpu resource utilization (percentage of request) above target")
	// The HPA reports the utilization it measured against its target.
	pollFor(t, 30*time.Second, "kubectl get hpa to show a measured utilization", func() bool {
		out := k.must("get", "hpa", "burner", "--no-headers")
		return strings.Contains(out, "Deployment/burner") && strings.Contains(out, "%/50%") && !strings.Contains(out, "<unknown>")
	})

	// kubectl top sees the burners spin.
	pollFor(t, 60*time.Second, "kubectl top pods to show the burners' CPU", func() bool {
		out, err := k.run("", "top", "pods", "-l", "app=burner", "--no-headers")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && strings.HasPrefix(f[0], "burner-") && strings.HasSuffix(f[1], "m") {
				if milli, _ := strconv.Atoi(strings.TrimSuffix(f[1], "m")); milli >= 100 {
					return true
				}
			}
		}
		return false
	})

	// Stop the load in every burner, including any started meanwhile,
	// until the HPA has scaled back to its minimum.
	idle := func() {
		names := strings.Fields(k.must("get", "pods", "-l", "app=burner", "-o",
			"jsonpath={range .items[?(@.status.phase=='Running')]}{.metadata.name} {end}"))
		for _, n := range names {
			_, _ = k.run("", "exec", n, "--", "touch", "/tmp/idle")
		}
	}
	stopped := time.Now()
	idle()
	pollFor(t, 120*time.Second, "the HPA to scale the burners back in", func() bool {
		idle()
		return replicas() == 1
	})
	// The last high recommendation can be up to one sync period (15 s)
	// older than the end of the load, so the window holds the scale-in
	// back for at least 30 - 15 s.
	if waited := time.Since(stopped); waited < 15*time.Second {
		t.Errorf("scaled in %s after the load stopped: the 30 s stabilization window did not hold it back", waited)
	}
	t.Logf("scaled in %s after the load stopped", time.Since(stopped).Round(time.Second))
	contains(t, k.must("get", "events", "--field-selector", "reason=SuccessfulRescale", "-o", "jsonpath={.items[*].message}"),
		"New size: 1; reason: All metrics below target")
	contains(t, k.must("describe", "hpa", "burner"), "AbleToScale", "ScalingActive", "ValidMetricFound")
}

// pollFor polls cond every second until it holds, failing after timeout.
func pollFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Second)
	}
}
