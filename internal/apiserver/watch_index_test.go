package apiserver

import "testing"

func TestWatchIndex(t *testing.T) {
	for _, tc := range []struct {
		selector, field, value string
	}{
		{"", "", ""},
		{"spec.nodeName=node-1", "spec.nodeName", "node-1"},
		{"spec.nodeName==node-1", "spec.nodeName", "node-1"},
		{"spec.nodeName=", "spec.nodeName", ""},
		{"spec.nodeName!=node-1", "", ""},
		{"status.phase!=Succeeded,spec.nodeName=n", "spec.nodeName", "n"},
		// metadata.name names one object: the narrowest index.
		{"spec.nodeName=n,metadata.name=x", "metadata.name", "x"},
		{"metadata.name=x,spec.nodeName=n", "metadata.name", "x"},
		{"not a selector(", "", ""},
	} {
		field, value := watchIndex(tc.selector)
		if field != tc.field || value != tc.value {
			t.Errorf("watchIndex(%q) = %q, %q; want %q, %q", tc.selector, field, value, tc.field, tc.value)
		}
	}
}
