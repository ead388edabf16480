package admission

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// namespacePodCheckTimeout bounds the time spent checking existing pods
// against a namespace's new enforce level, as upstream.
const namespacePodCheckTimeout = time.Second

// violation counts the pods that fail a level for the same reasons, and
// names the first of them by name.
type violation struct {
	firstPod string
	pods     int
}

// existingPodWarnings checks the namespace's pods against a new enforce
// level and returns upstream's warnings: a summary, then one line per set
// of reasons, naming a pod and how many others share them.
func (p *PodSecurity) existingPodWarnings(ctx context.Context, namespace string, enforce psapi.LevelVersion) []string {
	timeout := namespacePodCheckTimeout
	if deadline, ok := ctx.Deadline(); ok {
		// Never more than half of what the request has left.
		if left := time.Until(deadline) / 2; left < timeout {
			timeout = left
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pods, err := p.pods.ListPods(ctx, namespace)
	if err != nil {
		slog.Warn("PodSecurity: listing pods", "namespace", namespace, "err", err)
		return []string{"failed to list pods while checking new PodSecurity enforce level"}
	}
	ordered := podsByController(pods)
	total := len(ordered)
	if len(ordered) > p.maxPods {
		ordered = ordered[:p.maxPods]
	}
	checked := len(ordered)
	var reasons []string
	byReason := map[string]violation{}
	for i, pod := range ordered {
		r := policy.AggregateCheckResults(p.evaluator.EvaluatePod(enforce, &pod.ObjectMeta, &pod.Spec))
		if !r.Allowed {
			reason := r.ForbiddenReason()
			v, seen := byReason[reason]
			if !seen {
				reasons = append(reasons, reason)
				v.firstPod = pod.Name
			} else if pod.Name < v.firstPod {
				v.firstPod = pod.Name
			}
			v.pods++
			byReason[reason] = v
		}
		if ctx.Err() != nil {
			checked = i + 1
			break
		}
	}
	var warnings []string
	if checked < total {
		warnings = append(warnings, fmt.Sprintf("new PodSecurity enforce level only checked against the first %d of %d existing pods", checked, total))
	}
	if len(reasons) > 0 {
		warnings = append(warnings, fmt.Sprintf("existing pods in namespace %q violate the new PodSecurity enforce level %q", namespace, enforce.String()))
	}
	lines := make([]string, len(reasons))
	for i, reason := range reasons {
		lines[i] = describeViolation(byReason[reason], reason)
	}
	sort.Strings(lines)
	return append(warnings, lines...)
}

func describeViolation(v violation, reason string) string {
	switch v.pods {
	case 1:
		return fmt.Sprintf("%s: %s", v.firstPod, reason)
	case 2:
		return fmt.Sprintf("%s (and 1 other pod): %s", v.firstPod, reason)
	default:
		return fmt.Sprintf("%s (and %d other pods): %s", v.firstPod, v.pods-1, reason)
	}
}

// podsByController orders pods as upstream checks them: one pod per
// controller (and every uncontrolled pod) first, the other replicas last,
// so a bounded check sees every distinct template.
func podsByController(pods []*corev1.Pod) []*corev1.Pod {
	first := make([]*corev1.Pod, 0, len(pods))
	var replicas []*corev1.Pod
	seen := map[types.UID]bool{}
	for _, pod := range pods {
		ref := metav1.GetControllerOfNoCopy(pod)
		switch {
		case ref == nil:
			first = append(first, pod)
		case seen[ref.UID]:
			replicas = append(replicas, pod)
		default:
			seen[ref.UID] = true
			first = append(first, pod)
		}
	}
	return append(first, replicas...)
}
