package apis

import (
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/utils/ptr"
)

// A PodCertificateRequest without a lifetime gets a day, as the API
// documents; signers read it without checking for nil.
func TestDefaultPodCertificateRequestLifetime(t *testing.T) {
	r := &certificatesv1.PodCertificateRequest{}
	Default(r)
	if m := r.Spec.MaxExpirationSeconds; m == nil || *m != 86400 {
		t.Fatalf("maxExpirationSeconds = %v, want 86400", m)
	}
	r.Spec.MaxExpirationSeconds = ptr.To[int32](3600)
	Default(r)
	if *r.Spec.MaxExpirationSeconds != 3600 {
		t.Errorf("a given lifetime was replaced: %d", *r.Spec.MaxExpirationSeconds)
	}
}
