package storage

import (
	"testing"

	"k8s.io/apimachinery/pkg/fields"
)

func TestFieldsMatchAsTheSet(t *testing.T) {
	set := fields.Set{"metadata.name": "p", "metadata.namespace": "ns", "spec.nodeName": "n1", "status.phase": "", "spec.schedulerName": "default-scheduler"}
	f := NewFields(set)
	for k, v := range set {
		if !f.Has(k) || f.Get(k) != v {
			t.Errorf("%s: Has %v, Get %q; want true, %q", k, f.Has(k), f.Get(k), v)
		}
	}
	for _, k := range []string{"", "a", "metadata", "spec.nodeNameX", "zzz"} {
		if f.Has(k) || f.Get(k) != "" {
			t.Errorf("%q: found in %v", k, f)
		}
	}
	for _, sel := range []string{"spec.nodeName=n1", "spec.nodeName!=n2,status.phase=", "metadata.name=q", "spec.nodeName=n1,metadata.namespace!=ns", "status.phase!="} {
		s := fields.ParseSelectorOrDie(sel)
		if got, want := s.Matches(f), s.Matches(set); got != want {
			t.Errorf("%s: matches Fields %v, the set %v", sel, got, want)
		}
	}
	if NewFields(nil) != nil || NewFields(nil).Has("x") {
		t.Error("empty fields")
	}
}
