package e2e

import "testing"

// TestDeploymentRolloutThroughKubectl: kubectl rollout status, history and
// undo against the deployment controller.
func TestDeploymentRolloutThroughKubectl(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig}
	k.must("create", "deployment", "web", "--image=busybox:1.35", "--replicas=2")
	rollout := func() {
		t.Helper()
		waitFor(t, func() bool {
			markReadyPods(k, "app=web")
			_, err := k.run("", "rollout", "status", "deployment/web", "--timeout=1s")
			return err == nil
		}, "rollout to finish")
	}
	rollout()
	contains(t, k.must("get", "deploy", "web"), "2/2")
	k.must("set", "image", "deployment/web", "busybox=busybox:1.36")
	rollout()
	history := k.must("rollout", "history", "deployment/web")
	contains(t, history, "1", "2")
	k.must("rollout", "undo", "deployment/web")
	rollout()
	if img := k.must("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); img != "busybox:1.35" {
		t.Fatalf("image after undo: %s", img)
	}
	contains(t, k.must("get", "rs", "-l", "app=web"), "web-")
	contains(t, k.must("describe", "deploy", "web"), "ScalingReplicaSet", "NewReplicaSetAvailable")
}
