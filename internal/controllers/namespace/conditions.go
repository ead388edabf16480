package namespace

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// deletionConditionTypes are the Namespace conditions this controller owns,
// in the order upstream reports them.
var deletionConditionTypes = []corev1.NamespaceConditionType{
	corev1.NamespaceDeletionDiscoveryFailure,
	corev1.NamespaceDeletionGVParsingFailure,
	corev1.NamespaceDeletionContentFailure,
	corev1.NamespaceContentRemaining,
	corev1.NamespaceFinalizersRemaining,
}

// healthy is the False ("nothing wrong") variant of each condition.
var healthy = map[corev1.NamespaceConditionType]struct{ reason, message string }{
	corev1.NamespaceDeletionDiscoveryFailure: {"ResourcesDiscovered", "All resources successfully discovered"},
	corev1.NamespaceDeletionGVParsingFailure: {"ParsedGroupVersions", "All legacy kube types successfully parsed"},
	corev1.NamespaceDeletionContentFailure:   {"ContentDeleted", "All content successfully deleted, may be waiting on finalization"},
	corev1.NamespaceContentRemaining:         {"ContentRemoved", "All content successfully removed"},
	corev1.NamespaceFinalizersRemaining:      {"ContentHasNoFinalizers", "All content-preserving finalizers finished"},
}

// deletionReport collects what one deletion pass ran into.
type deletionReport struct {
	discoveryErr  error
	parseErrs     []error
	deleteErrs    []error
	remaining     map[schema.GroupVersionResource]int
	finalizerLeft map[string]int
}

func newDeletionReport() *deletionReport {
	return &deletionReport{remaining: map[schema.GroupVersionResource]int{}, finalizerLeft: map[string]int{}}
}

// failing returns the True conditions of the pass, keyed by type.
func (r *deletionReport) failing() map[corev1.NamespaceConditionType]corev1.NamespaceCondition {
	out := map[corev1.NamespaceConditionType]corev1.NamespaceCondition{}
	set := func(t corev1.NamespaceConditionType, reason, msg string) {
		out[t] = corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg}
	}
	if r.discoveryErr != nil {
		msg := r.discoveryErr.Error()
		var gf *discovery.ErrGroupDiscoveryFailed
		if errors.As(r.discoveryErr, &gf) {
			msg = fmt.Sprintf("Discovery failed for some groups, %d failing: %v", len(gf.Groups), r.discoveryErr)
		}
		set(corev1.NamespaceDeletionDiscoveryFailure, "DiscoveryFailed", msg)
	}
	if len(r.parseErrs) > 0 {
		set(corev1.NamespaceDeletionGVParsingFailure, "GroupVersionParsingFailed", joinErrs(r.parseErrs))
	}
	if len(r.deleteErrs) > 0 {
		set(corev1.NamespaceDeletionContentFailure, "ContentDeletionFailed",
			fmt.Sprintf("Failed to delete all resource types, %d remaining: %s", len(r.deleteErrs), joinErrs(r.deleteErrs)))
	}
	var left []string
	for gvr, n := range r.remaining {
		if n > 0 {
			left = append(left, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n))
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		set(corev1.NamespaceContentRemaining, "SomeResourcesRemain", "Some resources are remaining: "+strings.Join(left, ", "))
	}
	var fins []string
	for f, n := range r.finalizerLeft {
		if n > 0 {
			fins = append(fins, fmt.Sprintf("%s in %d resource instances", f, n))
		}
	}
	if len(fins) > 0 {
		sort.Strings(fins)
		set(corev1.NamespaceFinalizersRemaining, "SomeFinalizersRemain",
			"Some content in the namespace has finalizers remaining: "+strings.Join(fins, ", "))
	}
	return out
}

func joinErrs(errs []error) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	sort.Strings(msgs) // stable text, so an unchanged state writes nothing
	return strings.Join(msgs, ", ")
}

// applyConditions writes the pass's outcome into status: every owned
// condition is present, True when failing and False otherwise. The
// transition time moves only when something about the condition changes.
// It reports whether status changed.
func (r *deletionReport) applyConditions(status *corev1.NamespaceStatus, now metav1.Time) bool {
	failing := r.failing()
	changed := false
	for _, t := range deletionConditionTypes {
		want, ok := failing[t]
		if !ok {
			h := healthy[t]
			want = corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: h.reason, Message: h.message}
		}
		want.LastTransitionTime = now
		i := slices.IndexFunc(status.Conditions, func(c corev1.NamespaceCondition) bool { return c.Type == t })
		switch {
		case i < 0:
			status.Conditions = append(status.Conditions, want)
			changed = true
		case status.Conditions[i].Status != want.Status || status.Conditions[i].Reason != want.Reason ||
			status.Conditions[i].Message != want.Message:
			status.Conditions[i] = want
			changed = true
		}
	}
	return changed
}
