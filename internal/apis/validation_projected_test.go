package apis

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// podWithProjection is a valid pod whose one volume projects sources.
func podWithProjection(sources ...corev1.VolumeProjection) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
				Projected: &corev1.ProjectedVolumeSource{Sources: sources},
			}}},
		},
	}
	Default(p)
	return p
}

func podCert(mut func(*corev1.PodCertificateProjection)) corev1.VolumeProjection {
	c := &corev1.PodCertificateProjection{SignerName: "e2e.example.com/spiffe", KeyType: "ED25519", CredentialBundlePath: "bundle.pem"}
	mut(c)
	return corev1.VolumeProjection{PodCertificate: c}
}

func TestValidateProjectedSources(t *testing.T) {
	const src = "spec.volumes[0].projected.sources[0]"
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []string // "type field", and " : message" where the message matters
	}{
		{"valid pod certificate", podWithProjection(podCert(func(*corev1.PodCertificateProjection) {})), nil},
		{"certificate lifetime of 91 days", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			c.MaxExpirationSeconds = ptr.To[int32](91 * 24 * 3600)
		})), nil},
		{"certificate lifetime over 91 days", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			c.MaxExpirationSeconds = ptr.To[int32](91*24*3600 + 1)
		})), []string{"FieldValueInvalid " + src + ".podCertificate.maxExpirationSeconds : if provided, maxExpirationSeconds must be <= 7862400"}},
		{"certificate lifetime under an hour", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			c.MaxExpirationSeconds = ptr.To[int32](3599)
		})), []string{"FieldValueInvalid " + src + ".podCertificate.maxExpirationSeconds : if provided, maxExpirationSeconds must be >= 3600"}},
		{"kubernetes.io signer over a day", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			c.SignerName = "kubernetes.io/kube-apiserver-client-pod"
			c.MaxExpirationSeconds = ptr.To[int32](2 * 24 * 3600)
		})), []string{"FieldValueInvalid " + src + ".podCertificate.maxExpirationSeconds : if provided, maxExpirationSeconds must be <= 86400"}},
		{"certificate without key type, signer or files", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			*c = corev1.PodCertificateProjection{KeyType: "DSA"}
		})), []string{"FieldValueRequired " + src + ".podCertificate.signerName", "FieldValueNotSupported " + src + ".podCertificate.keyType",
			"FieldValueRequired " + src + ".podCertificate"}},
		{"certificate annotations without a domain", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			c.UserAnnotations = map[string]string{"path": "/x"}
		})), []string{"FieldValueInvalid " + src + ".podCertificate.userAnnotations"}},
		{"certificate files outside the volume", podWithProjection(podCert(func(c *corev1.PodCertificateProjection) {
			c.KeyPath, c.CertificateChainPath = "/etc/key.pem", "..chain"
		})), []string{"FieldValueInvalid " + src + ".podCertificate.keyPath", "FieldValueInvalid " + src + ".podCertificate.certificateChainPath"}},
		{"two sources writing one file", podWithProjection(
			podCert(func(*corev1.PodCertificateProjection) {}),
			corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"},
				Items: []corev1.KeyToPath{{Key: "k", Path: "bundle.pem"}}}},
		), []string{"FieldValueInvalid spec.volumes[0].projected : conflicting duplicate paths"}},
		{"two kinds in one source", podWithProjection(corev1.VolumeProjection{
			Secret:    &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}},
			ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}},
		}), []string{"FieldValueForbidden " + src}},
		{"token too short and without a path", podWithProjection(corev1.VolumeProjection{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](60)},
		}), []string{"FieldValueInvalid " + src + ".serviceAccountToken.expirationSeconds", "FieldValueRequired spec.volumes[0].projected.path"}},
		{"trust bundle by name and signer", podWithProjection(corev1.VolumeProjection{
			ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: ptr.To("b"), SignerName: ptr.To("example.com/s"), Path: "ca.pem"},
		}), []string{"FieldValueInvalid " + src + ".clusterTrustBundle"}},
		{"downward API item without a reference", podWithProjection(corev1.VolumeProjection{
			DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels"}}},
		}), []string{"FieldValueRequired " + src + ".downwardAPI"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range Validate(tt.pod) {
				got = append(got, string(e.Type)+" "+e.Field+" : "+e.Detail)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("errors %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				// With a message, the whole error; without, type and field.
				match := got[i] == w
				if !strings.Contains(w, " : ") {
					match = strings.HasPrefix(got[i], w+" : ")
				}
				if !match {
					t.Errorf("error %d = %q, want %q", i, got[i], w)
				}
			}
		})
	}
}
