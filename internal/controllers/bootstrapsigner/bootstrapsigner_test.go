package bootstrapsigner

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
)

func tokenSecret(id, secret string, mod func(map[string][]byte)) *corev1.Secret {
	data := map[string][]byte{
		"token-id": []byte(id), "token-secret": []byte(secret),
		"usage-bootstrap-authentication": []byte("true"), "usage-bootstrap-signing": []byte("true"),
	}
	if mod != nil {
		mod(data)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: tokenSecretPrefix + id, Namespace: tokenNamespace},
		Type:       corev1.SecretTypeBootstrapToken, Data: data,
	}
}

func TestSignedData(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour).Format(time.RFC3339)
	earlier := now.Add(-time.Hour).Format(time.RFC3339)
	secrets := []*corev1.Secret{
		tokenSecret("aaaaaa", "0123456789abcdef", nil),
		tokenSecret("bbbbbb", "0123456789abcdef", func(d map[string][]byte) { d["expiration"] = []byte(later) }),
		tokenSecret("cccccc", "0123456789abcdef", func(d map[string][]byte) { d["expiration"] = []byte(earlier) }),
		tokenSecret("dddddd", "0123456789abcdef", func(d map[string][]byte) { d["usage-bootstrap-signing"] = []byte("false") }),
		tokenSecret("eeeeee", "short", nil),
	}
	opaque := tokenSecret("ffffff", "0123456789abcdef", nil)
	opaque.Type = corev1.SecretTypeOpaque
	misnamed := tokenSecret("gggggg", "0123456789abcdef", nil)
	misnamed.Name = tokenSecretPrefix + "hhhhhh"
	secrets = append(secrets, opaque, misnamed)

	in := map[string]string{KubeconfigKey: "kc", "other": "x", SignaturePrefix + "zzzzzz": "stale"}
	out, next := signedData(in, secrets, now)
	want := map[string]bool{KubeconfigKey: true, "other": true, SignaturePrefix + "aaaaaa": true, SignaturePrefix + "bbbbbb": true}
	if len(out) != len(want) {
		t.Errorf("keys = %v, want %v", out, want)
	}
	for k := range want {
		if _, ok := out[k]; !ok {
			t.Errorf("missing %s in %v", k, out)
		}
	}
	if !Verify(out[SignaturePrefix+"aaaaaa"], "kc", "aaaaaa", "0123456789abcdef") {
		t.Error("signature of aaaaaa does not verify")
	}
	if !next.Equal(now.Add(time.Hour)) {
		t.Errorf("next expiry = %v, want %v", next, now.Add(time.Hour))
	}
	if in[SignaturePrefix+"zzzzzz"] != "stale" {
		t.Error("input map was changed")
	}
}

func TestRunSignsAndUnsigns(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ClusterInfoName, Namespace: ClusterInfoNamespace},
		Data:       map[string]string{KubeconfigKey: "kc"},
	}
	client := fake.NewClientset(cm, tokenSecret("abcdef", "0123456789abcdef", nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		New(client, nil).Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor := func(present bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := client.CoreV1().ConfigMaps(ClusterInfoNamespace).Get(ctx, ClusterInfoName, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			_, ok := got.Data[SignaturePrefix+"abcdef"]
			return ok == present, nil
		})
		if err != nil {
			t.Fatalf("signature present=%v: %v", present, err)
		}
	}
	waitFor(true)
	if err := client.CoreV1().Secrets(tokenNamespace).Delete(ctx, tokenSecretPrefix+"abcdef", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(false)
}
