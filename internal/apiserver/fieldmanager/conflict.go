package fieldmanager

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/merge"
)

// conflictError is the 409 an apply without force gets when it would take
// fields other managers own, worded as upstream.
func conflictError(conflicts merge.Conflicts) *apierrors.StatusError {
	causes := make([]metav1.StatusCause, 0, len(conflicts))
	for _, c := range conflicts {
		causes = append(causes, metav1.StatusCause{
			Type:    metav1.CauseTypeFieldManagerConflict,
			Message: "conflict with " + describeManager(c.Manager),
			Field:   c.Path.String(),
		})
	}
	return apierrors.NewApplyConflict(causes, conflictMessage(conflicts))
}

func conflictMessage(conflicts merge.Conflicts) string {
	if len(conflicts) == 1 {
		return fmt.Sprintf("Apply failed with 1 conflict: conflict with %s: %v", describeManager(conflicts[0].Manager), conflicts[0].Path)
	}
	byManager := map[string][]fieldpath.Path{}
	for _, c := range conflicts {
		byManager[c.Manager] = append(byManager[c.Manager], c.Path)
	}
	managers := make([]string, 0, len(byManager))
	for id := range byManager {
		managers = append(managers, id)
	}
	sort.Strings(managers)
	var lines []string
	for _, id := range managers {
		lines = append(lines, fmt.Sprintf("conflicts with %s:", describeManager(id)))
		for _, p := range byManager[id] {
			lines = append(lines, fmt.Sprintf("- %v", p))
		}
	}
	return fmt.Sprintf("Apply failed with %d conflicts: %s", len(conflicts), strings.Join(lines, "\n"))
}

// describeManager renders a manager identifier for people:
// `"kubectl-edit" using apps/v1` for an updater, `"kubectl"` for an applier.
func describeManager(id string) string {
	var e metav1.ManagedFieldsEntry
	if err := json.Unmarshal([]byte(id), &e); err != nil {
		return fmt.Sprintf("%q", id)
	}
	s := fmt.Sprintf("%q", e.Manager)
	if e.Subresource != "" {
		s = fmt.Sprintf("%s with subresource %q", s, e.Subresource)
	}
	if e.Operation != metav1.ManagedFieldsOperationUpdate {
		return s
	}
	if e.Time == nil {
		return fmt.Sprintf("%s using %v", s, e.APIVersion)
	}
	return fmt.Sprintf("%s using %v at %v", s, e.APIVersion, e.Time.UTC().Format(time.RFC3339))
}

// conflictsOutside keeps the conflicts whose path allowed does not contain.
func conflictsOutside(conflicts merge.Conflicts, allowed *fieldpath.Set) merge.Conflicts {
	out := merge.Conflicts{}
	for _, c := range conflicts {
		if !allowed.Has(c.Path) {
			out = append(out, c)
		}
	}
	return out
}
