package apiserver

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apis"
)

// TestValidateObjectMetaFinalizers checks the causes upstream v1.37.2
// gives for metadata.finalizers of a built-in kind, in its order.
func TestValidateObjectMetaFinalizers(t *testing.T) {
	r := &resource{Resource: &apis.Resource{Namespaced: true}, gr: schema.GroupResource{Resource: "configmaps"}}
	for _, c := range []struct {
		finalizers []string
		want       string
	}{
		{[]string{"example.com/x", "kubernetes", "orphan"}, ""},
		{[]string{"foregroundDeletion"}, ""},
		{[]string{"bogus"}, `metadata.finalizers[0]: Invalid value: "bogus": name is neither a standard finalizer name nor is it fully qualified`},
		{[]string{"Bad_Name!"}, `metadata.finalizers: Invalid value: "Bad_Name!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')` +
			"\n" + `metadata.finalizers[0]: Invalid value: "Bad_Name!": name is neither a standard finalizer name nor is it fully qualified`},
	} {
		m := &metav1.ObjectMeta{Name: "cm", Namespace: "ns", Finalizers: c.finalizers}
		var got []string
		for _, e := range validateObjectMeta(r, m) {
			got = append(got, e.Error())
		}
		if g := strings.Join(got, "\n"); g != c.want {
			t.Errorf("finalizers %q:\ngot  %s\nwant %s", c.finalizers, g, c.want)
		}
	}
}
