package apis

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// downwardLabels are the pod fields the downward API can name (v1), and
// envFieldPaths those an environment variable may take.
var (
	downwardLabels = []string{
		"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
		"spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
		"status.phase", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
	}
	envFieldPaths = []string{
		"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
		"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
	}
	volumeFieldPaths = []string{"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"}
)

// splitSubscript splits "metadata.labels['key']" into its path and key.
func splitSubscript(fieldPath string) (string, string, bool) {
	s, ok := strings.CutSuffix(fieldPath, "']")
	if !ok {
		return fieldPath, "", false
	}
	path, key, ok := strings.Cut(s, "['")
	if !ok || path == "" {
		return fieldPath, "", false
	}
	return path, key, true
}

// convertDownwardLabel maps a field path of the given pod API version to
// its canonical form, as the kubelet resolves it.
func convertDownwardLabel(version, label string) (string, error) {
	if version != "v1" {
		return "", fmt.Errorf("unsupported pod version: %s", version)
	}
	if path, _, ok := splitSubscript(label); ok {
		if path == "metadata.annotations" || path == "metadata.labels" {
			return label, nil
		}
		return "", fmt.Errorf("field label does not support subscript: %s", label)
	}
	switch {
	case slices.Contains(downwardLabels, label):
		return label, nil
	case label == "spec.host": // old clients' spelling
		return "spec.nodeName", nil
	}
	return "", fmt.Errorf("field label not supported: %s", label)
}

// validateFieldRef checks a downward API field reference against the
// paths allowed where it is used (sorted, as they are listed in errors).
func validateFieldRef(fs *corev1.ObjectFieldSelector, allowed []string, p *field.Path) field.ErrorList {
	if fs.APIVersion == "" {
		return field.ErrorList{field.Required(p.Child("apiVersion"), "")}
	}
	if fs.FieldPath == "" {
		return field.ErrorList{field.Required(p.Child("fieldPath"), "")}
	}
	canonical, err := convertDownwardLabel(fs.APIVersion, fs.FieldPath)
	if err != nil {
		return field.ErrorList{field.Invalid(p.Child("fieldPath"), fs.FieldPath, "error converting fieldPath: "+err.Error())}
	}
	path, key, ok := splitSubscript(canonical)
	switch {
	case ok && path == "metadata.annotations":
		return invalidMsgs(p, strings.ToLower(key), validation.IsQualifiedName(strings.ToLower(key)))
	case ok && path == "metadata.labels":
		return invalidMsgs(p, key, validation.IsQualifiedName(key))
	case ok:
		return field.ErrorList{field.Invalid(p, path, "does not support subscript")}
	case !slices.Contains(allowed, path):
		sorted := slices.Sorted(slices.Values(allowed))
		return field.ErrorList{field.NotSupported(p.Child("fieldPath"), path, sorted)}
	}
	return nil
}
