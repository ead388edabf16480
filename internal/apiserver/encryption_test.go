package apiserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/storage"
	"github.com/skiff-dev/skiff/internal/storage/encryption"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// startEncrypted runs an API server on the embedded etcd in dir with
// Secrets encrypted as providers (YAML) says; Stop ends it so the next one
// can reuse dir.
func startEncrypted(t *testing.T, dir, providers string) *testserver.Server {
	t.Helper()
	enc, err := encryption.Parse([]byte("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n" + providers))
	if err != nil {
		t.Fatal(err)
	}
	return testserver.StartWith(t, testserver.Options{DataDir: dir, StoreOptions: []storage.StoreOption{storage.WithEncryption(enc)}})
}

// rawValue reads key straight from etcd, bypassing the API server.
func rawValue(t *testing.T, s *testserver.Server, key string) []byte {
	t.Helper()
	resp, err := s.Etcd.Client.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw etcd read of %s: %v %v", key, resp, err)
	}
	return resp.Kvs[0].Value
}

func aesKey(fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 32))
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key1 := "      - {name: key1, secret: " + aesKey(1) + "}\n"
	key2 := "      - {name: key2, secret: " + aesKey(2) + "}\n"
	const secretKey = "/registry/secrets/default/s1"
	value := []byte("hunter2-very-secret")

	s := startEncrypted(t, dir, "  - aescbc:\n      keys:\n"+key1+key2+"  - identity: {}\n")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s1"}, Data: map[string][]byte{"password": value}}
	if _, err := s.Client.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c1"}, Data: map[string]string{"k": "plain-config"}}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := rawValue(t, s, secretKey)
	if !bytes.HasPrefix(raw, []byte("k8s:enc:aescbc:v1:key1:")) || bytes.Contains(raw, value) {
		t.Fatalf("stored secret %q is not encrypted with key1", raw[:min(len(raw), 40)])
	}
	if !bytes.Contains(rawValue(t, s, "/registry/configmaps/default/c1"), []byte("plain-config")) {
		t.Error("configmaps are not listed in the configuration and should stay plain")
	}
	assertSecret(t, s, value)
	s.Stop()

	// A restart with the same configuration reads it back.
	s = startEncrypted(t, dir, "  - aescbc:\n      keys:\n"+key1+key2+"  - identity: {}\n")
	assertSecret(t, s, value)
	s.Stop()

	// Rotation: key2 first; rewriting the unchanged object re-encrypts it.
	s = startEncrypted(t, dir, "  - aescbc:\n      keys:\n"+key2+key1+"  - identity: {}\n")
	got := assertSecret(t, s, value)
	if _, err := s.Client.CoreV1().Secrets("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw := rawValue(t, s, secretKey); !bytes.HasPrefix(raw, []byte("k8s:enc:aescbc:v1:key2:")) {
		t.Fatalf("after rewrite the secret is stored as %q, want key2", raw[:min(len(raw), 40)])
	}
	assertSecret(t, s, value)
	s.Stop()

	// A key of the right name but the wrong bytes: a 500, not a panic or
	// garbage.
	s = startEncrypted(t, dir, "  - aescbc:\n      keys:\n      - {name: key2, secret: "+aesKey(9)+"}\n")
	_, err := s.Client.CoreV1().Secrets("default").Get(ctx, "s1", metav1.GetOptions{})
	var se apierrors.APIStatus
	if !apierrors.IsInternalError(err) || !errors.As(err, &se) || se.Status().Code != http.StatusInternalServerError {
		t.Fatalf("reading with a wrong key: %v, want 500 InternalError", err)
	}
	// Other objects are unaffected.
	if _, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "c1", metav1.GetOptions{}); err != nil {
		t.Errorf("configmap with a broken secrets key: %v", err)
	}
}

func assertSecret(t *testing.T, s *testserver.Server, want []byte) *corev1.Secret {
	t.Helper()
	got, err := s.Client.CoreV1().Secrets("default").Get(context.Background(), "s1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data["password"], want) {
		t.Fatalf("secret data %q, want %q", got.Data["password"], want)
	}
	// The watch cache, which serves lists, decrypts too.
	l, err := s.Client.CoreV1().Secrets("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, it := range l.Items {
		found = found || (it.Name == "s1" && bytes.Equal(it.Data["password"], want))
	}
	if !found {
		t.Error("secret missing from the cached list")
	}
	return got
}
