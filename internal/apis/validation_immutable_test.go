package apis

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func fieldsOf(errs field.ErrorList) string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Field)
	}
	return strings.Join(s, ",")
}

func TestImmutableConfigMap(t *testing.T) {
	yes, no := true, false
	old := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Immutable:  &yes,
		Data:       map[string]string{"a": "1"},
		BinaryData: map[string][]byte{"b": []byte("2")},
	}
	for _, c := range []struct {
		name   string
		change func(*corev1.ConfigMap)
		want   string // fields of the errors, in order
	}{
		{"labels", func(c *corev1.ConfigMap) { c.Labels = map[string]string{"l": "v"} }, ""},
		{"data", func(c *corev1.ConfigMap) { c.Data["a"] = "x" }, "data"},
		{"binaryData", func(c *corev1.ConfigMap) { c.BinaryData = nil }, "binaryData"},
		{"mutable again", func(c *corev1.ConfigMap) { c.Immutable = &no }, "immutable"},
		{"unset", func(c *corev1.ConfigMap) { c.Immutable = nil; c.Data = nil }, "immutable,data"},
	} {
		cm := old.DeepCopy()
		c.change(cm)
		errs := ValidateUpdate(cm, old)
		if got := fieldsOf(errs); got != c.want {
			t.Errorf("%s: errors on %q (%v), want %q", c.name, got, errs, c.want)
		}
		for _, e := range errs {
			if e.Type != field.ErrorTypeForbidden || e.Detail != "field is immutable when `immutable` is set" {
				t.Errorf("%s: %v is not upstream's error", c.name, e)
			}
		}
	}

	// A mutable ConfigMap may change and may become immutable.
	mutable := old.DeepCopy()
	mutable.Immutable = nil
	cm := mutable.DeepCopy()
	cm.Data["a"] = "x"
	cm.Immutable = &yes
	if errs := ValidateUpdate(cm, mutable); len(errs) != 0 {
		t.Errorf("mutable ConfigMap update: %v", errs)
	}
}

func TestImmutableSecret(t *testing.T) {
	yes, no := true, false
	old := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Type:       corev1.SecretTypeOpaque,
		Immutable:  &yes,
		Data:       map[string][]byte{"a": []byte("1")},
	}
	for _, c := range []struct {
		name   string
		change func(*corev1.Secret)
		want   string
	}{
		{"annotations", func(s *corev1.Secret) { s.Annotations = map[string]string{"k": "v"} }, ""},
		{"data", func(s *corev1.Secret) { s.Data["b"] = []byte("2") }, "data"},
		{"stringData", func(s *corev1.Secret) { s.StringData = map[string]string{"a": "3"}; Default(s) }, "data"},
		{"mutable again", func(s *corev1.Secret) { s.Immutable = &no }, "immutable"},
		{"type", func(s *corev1.Secret) { s.Type = "other" }, "type"},
	} {
		s := old.DeepCopy()
		c.change(s)
		if got := fieldsOf(ValidateUpdate(s, old)); got != c.want {
			t.Errorf("%s: errors on %q, want %q", c.name, got, c.want)
		}
	}
}
