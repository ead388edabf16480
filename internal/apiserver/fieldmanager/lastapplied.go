package fieldmanager

import (
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// LastAppliedAnnotation holds the configuration of kubectl's client-side apply.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// lastAppliedFields returns the fields live's last-applied annotation sets
// to the values live still has: client-side apply owned those, so a
// server-side apply by kubectl may take them without a conflict.
func (m *Manager) lastAppliedFields(live runtime.Object) (*fieldpath.Set, error) {
	a, err := meta.Accessor(live)
	if err != nil {
		return nil, err
	}
	lastApplied := a.GetAnnotations()[LastAppliedAnnotation]
	if lastApplied == "" {
		return nil, errors.New("no last applied annotation")
	}
	liveU, err := m.toUnstructured(live)
	if err != nil {
		return nil, err
	}
	liveTyped, err := m.tc.ObjectToTyped(liveU)
	if err != nil {
		return nil, fmt.Errorf("failed to convert live obj to typed: %w", err)
	}
	last := &unstructured.Unstructured{Object: map[string]any{}}
	if err := json.Unmarshal([]byte(lastApplied), &last.Object); err != nil {
		return nil, fmt.Errorf("failed to decode last applied obj: %w", err)
	}
	if last.GetAPIVersion() != m.gvk.GroupVersion().String() {
		return nil, fmt.Errorf("expected version of last applied to match live object %q, but got %q", m.gvk.GroupVersion(), last.GetAPIVersion())
	}
	lastTyped, err := m.tc.ObjectToTyped(last)
	if err != nil {
		return nil, fmt.Errorf("failed to convert last applied to typed: %w", err)
	}
	set, err := lastTyped.ToFieldSet()
	if err != nil {
		return nil, fmt.Errorf("failed to create fieldset for last applied object: %w", err)
	}
	diff, err := lastTyped.Compare(liveTyped)
	if err != nil {
		return nil, fmt.Errorf("failed to compare last applied object and live object: %w", err)
	}
	return set.Difference(diff.Modified).Difference(diff.Added).Difference(diff.Removed), nil
}

func hasLastApplied(obj runtime.Object) bool {
	a, err := meta.Accessor(obj)
	return err == nil && a.GetAnnotations()[LastAppliedAnnotation] != ""
}

// lastAppliedValue is the annotation's value for an apply configuration:
// the configuration as JSON, without the annotation itself.
func lastAppliedValue(config *unstructured.Unstructured) (string, error) {
	c := config.DeepCopy()
	annotations := c.GetAnnotations()
	delete(annotations, LastAppliedAnnotation)
	c.SetAnnotations(annotations)
	b, err := runtime.Encode(unstructured.UnstructuredJSONScheme, c)
	if err != nil {
		return "", fmt.Errorf("couldn't encode object into last applied annotation: %w", err)
	}
	return string(b), nil
}

// setLastApplied stores value in obj's annotation, or drops the annotation
// when it would make the annotations too large, as upstream does.
func setLastApplied(obj runtime.Object, value string) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	annotations := a.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[LastAppliedAnnotation] = value
	if err := apivalidation.ValidateAnnotationsSize(annotations); err != nil {
		delete(annotations, LastAppliedAnnotation)
	}
	a.SetAnnotations(annotations)
}
