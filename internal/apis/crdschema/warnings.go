package crdschema

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
)

// standardFinalizers need no domain prefix.
var standardFinalizers = map[string]bool{
	metav1.FinalizerOrphanDependents: true,
	metav1.FinalizerDeleteDependents: true,
	"kubernetes":                     true,
}

// Warnings are upstream's warnings on creating obj: finalizer names that are
// not qualified names or not domain-qualified. May return nil.
func (v *Version) Warnings(ctx context.Context, obj map[string]any) []string {
	return finalizerWarnings(obj, nil)
}

// WarningsOnUpdate are Warnings for the finalizers obj adds to old.
func (v *Version) WarningsOnUpdate(ctx context.Context, obj, old map[string]any) []string {
	return finalizerWarnings(obj, old)
}

func finalizerWarnings(obj, old map[string]any) []string {
	finalizers, _, _ := unstructured.NestedStringSlice(obj, "metadata", "finalizers")
	added := sets.New(finalizers...)
	if old != nil {
		had, _, _ := unstructured.NestedStringSlice(old, "metadata", "finalizers")
		added = added.Difference(sets.New(had...))
	}
	const path = "metadata.finalizers"
	var warnings []string
	for _, f := range sets.List(added) {
		for _, msg := range validation.IsQualifiedName(f) {
			warnings = append(warnings, fmt.Sprintf("%s: %q: %s", path, f, msg))
		}
		if strings.Contains(f, "/") || standardFinalizers[f] {
			continue
		}
		if strings.Contains(f, ".") {
			warnings = append(warnings, fmt.Sprintf("%s: %q: prefer a domain-qualified finalizer name including a path (/) to avoid accidental conflicts with other finalizer writers", path, f))
		} else {
			warnings = append(warnings, fmt.Sprintf("%s: %q: prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers", path, f))
		}
	}
	return warnings
}
