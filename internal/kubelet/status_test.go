package kubelet

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func running() v1.ContainerStatus {
	return v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
}

func exited(code int32) v1.ContainerStatus {
	return v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: code}}}
}

func backingOff(code int32) v1.ContainerStatus {
	return v1.ContainerStatus{
		State:                v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: code}},
	}
}

func creating() v1.ContainerStatus {
	return v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
}

func TestPodPhase(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     v1.RestartPolicy
		statuses   []v1.ContainerStatus
		initDone   bool
		initFailed bool
		want       v1.PodPhase
	}{
		{"initialising", v1.RestartPolicyAlways, []v1.ContainerStatus{creating()}, false, false, v1.PodPending},
		{"init failed for good", v1.RestartPolicyNever, []v1.ContainerStatus{creating()}, false, true, v1.PodFailed},
		{"creating", v1.RestartPolicyAlways, []v1.ContainerStatus{running(), creating()}, true, false, v1.PodPending},
		{"running", v1.RestartPolicyAlways, []v1.ContainerStatus{running(), exited(0)}, true, false, v1.PodRunning},
		{"crash looping is running", v1.RestartPolicyAlways, []v1.ContainerStatus{backingOff(1)}, true, false, v1.PodRunning},
		{"never, all succeeded", v1.RestartPolicyNever, []v1.ContainerStatus{exited(0), exited(0)}, true, false, v1.PodSucceeded},
		{"never, one failed", v1.RestartPolicyNever, []v1.ContainerStatus{exited(0), exited(2)}, true, false, v1.PodFailed},
		{"onfailure, all succeeded", v1.RestartPolicyOnFailure, []v1.ContainerStatus{exited(0)}, true, false, v1.PodSucceeded},
		{"onfailure, failed restarts", v1.RestartPolicyOnFailure, []v1.ContainerStatus{backingOff(1)}, true, false, v1.PodRunning},
		{"always, exited restarts", v1.RestartPolicyAlways, []v1.ContainerStatus{exited(0)}, true, false, v1.PodRunning},
	} {
		pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: tc.policy}}
		if got := podPhase(pod, tc.statuses, tc.initDone, tc.initFailed); got != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestMergeForeignConditionsKeepsOthers(t *testing.T) {
	old := []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}, {Type: "example.com/gate", Status: v1.ConditionTrue}, {Type: v1.PodReady, Status: v1.ConditionFalse}}
	ours := []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
	got := mergeForeignConditions(old, ours)
	seen := map[v1.PodConditionType]v1.ConditionStatus{}
	for _, c := range got {
		if _, dup := seen[c.Type]; dup {
			t.Fatalf("duplicate condition %s in %v", c.Type, got)
		}
		seen[c.Type] = c.Status
	}
	if seen[v1.PodScheduled] != v1.ConditionTrue || seen["example.com/gate"] != v1.ConditionTrue || seen[v1.PodReady] != v1.ConditionTrue {
		t.Errorf("merged = %v", got)
	}
}
