package csiprovisioner

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSecretRefTemplates(t *testing.T) {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data",
		Annotations: map[string]string{"example.com/secret": "mine"}}}
	for _, tc := range []struct {
		name, nameTmpl, nsTmpl string
		want                   string // namespace/name, or an error's text
	}{
		{"plain", "s", "kube-system", "kube-system/s"},
		{"claim vars", "${pvc.name}-${pv.name}", "${pvc.namespace}", "ns/data-pvc-1"},
		{"annotation", "${pvc.annotations['example.com/secret']}", "${pvc.namespace}", "ns/mine"},
		{"claim name not in namespace", "s", "${pvc.name}", `unknown template variable "${pvc.name}"`},
		{"unknown variable", "${node.name}", "ns", `unknown template variable "${node.name}"`},
		{"empty", "${pvc.annotations['none']}", "ns", "empty name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Parameters: map[string]string{
				reservedPrefix + "node-publish-secret-name": tc.nameTmpl, reservedPrefix + "node-publish-secret-namespace": tc.nsTmpl}}
			ref, err := secretRef(sc, secretNodePublish, "pvc-1", pvc)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = ref.Namespace + "/" + ref.Name
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	sc := &storagev1.StorageClass{Parameters: map[string]string{reservedPrefix + "node-publish-secret-name": "s"}}
	if _, err := secretRef(sc, secretNodePublish, "pvc-1", pvc); err == nil {
		t.Error("a name without a namespace was accepted")
	}
	if ref, err := secretRef(sc, secretNodeStage, "pvc-1", pvc); ref != nil || err != nil {
		t.Errorf("unset kind = %v, %v", ref, err)
	}
}
