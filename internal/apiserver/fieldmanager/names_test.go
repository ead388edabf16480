package fieldmanager

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestManagerName(t *testing.T) {
	for ua, want := range map[string]string{
		"kubectl/v1.37.2 (linux/amd64) kubernetes/abcdef": "kubectl",
		"kube-controller-manager/v1.37.2":                 "kube-controller-manager",
		"":                                                "",
		"weird\x00agent/1":                                "weirdagent",
		strings.Repeat("x", 200):                          strings.Repeat("x", 128),
	} {
		if got := ManagerName(ua); got != want {
			t.Errorf("ManagerName(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestValidateManager(t *testing.T) {
	if err := ValidateManager("kubectl", true); err != nil {
		t.Errorf("valid manager: %v", err)
	}
	if err := ValidateManager("", false); err != nil {
		t.Errorf("an update may omit the manager: %v", err)
	}
	err := ValidateManager("", true)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("err = %v, want 422", err)
	}
	if want := `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	if err := ValidateManager(strings.Repeat("m", 129), false); !apierrors.IsInvalid(err) {
		t.Errorf("long manager: %v", err)
	}
	if err := ValidateManager("tab\tbed", false); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "invalid character U+0009") {
		t.Errorf("unprintable manager: %v", err)
	}
}
