package job

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// matchRule returns the first podFailurePolicy rule that matches a failed
// pod, if any.
func matchRule(job *batchv1.Job, p *corev1.Pod) *batchv1.PodFailurePolicyRule {
	if job.Spec.PodFailurePolicy == nil {
		return nil
	}
	for i := range job.Spec.PodFailurePolicy.Rules {
		r := &job.Spec.PodFailurePolicy.Rules[i]
		if r.OnExitCodes != nil && matchesExitCodes(r.OnExitCodes, p) {
			return r
		}
		for _, pc := range r.OnPodConditions {
			for _, c := range p.Status.Conditions {
				if c.Type == pc.Type && c.Status == pc.Status {
					return r
				}
			}
		}
	}
	return nil
}

func matchesExitCodes(req *batchv1.PodFailurePolicyOnExitCodesRequirement, p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if req.ContainerName != nil && *req.ContainerName != cs.Name {
			continue
		}
		t := cs.State.Terminated
		if t == nil || t.ExitCode == 0 {
			continue
		}
		in := slices.Contains(req.Values, t.ExitCode)
		if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
			return true
		}
	}
	return false
}

// ignoredFailure reports whether a failed pod is not to be counted.
func (c *Controller) ignoredFailure(job *batchv1.Job, p *corev1.Pod) bool {
	r := matchRule(job, p)
	return r != nil && r.Action == batchv1.PodFailurePolicyActionIgnore
}

// failedByPolicy returns why the policy fails the whole job, or "".
func (c *Controller) failedByPolicy(job *batchv1.Job, failed []*corev1.Pod) string {
	for _, p := range failed {
		if r := matchRule(job, p); r != nil && r.Action == batchv1.PodFailurePolicyActionFailJob {
			return fmt.Sprintf("Pod %s/%s failed with a status matching FailJob rule of the pod failure policy", p.Namespace, p.Name)
		}
	}
	return ""
}
