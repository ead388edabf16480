package serviceaccounttoken

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

// fakeSign makes a token that shows what it was signed for.
func fakeSign(ns, sa, uid, secret string) (string, error) {
	return fmt.Sprintf("%s/%s/%s/%s", ns, sa, uid, secret), nil
}

func serviceAccount(name, uid string, secrets ...string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}}
	for _, s := range secrets {
		sa.Secrets = append(sa.Secrets, corev1.ObjectReference{Name: s})
	}
	return sa
}

func tokenSecret(name, saName, saUID string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name + "-uid"),
			Annotations: map[string]string{corev1.ServiceAccountNameKey: saName}},
		Type: corev1.SecretTypeServiceAccountToken,
	}
	if saUID != "" {
		s.Annotations[corev1.ServiceAccountUIDKey] = saUID
	}
	return s
}

func start(t *testing.T, objs ...any) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			_, err = client.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = client.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, fakeSign, []byte(testCA), slog.New(slog.DiscardHandler))
	controllertest.Run(t, ctx, factory, c.Run)
	return client
}

func getSecret(client *fake.Clientset, name string) (*corev1.Secret, error) {
	return client.CoreV1().Secrets("ns").Get(context.Background(), name, metav1.GetOptions{})
}

func filled(client *fake.Clientset, name string) bool {
	s, err := getSecret(client, name)
	return err == nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 &&
		string(s.Data[corev1.ServiceAccountRootCAKey]) == testCA && string(s.Data[corev1.ServiceAccountNamespaceKey]) == "ns"
}

func gone(client *fake.Clientset, name string) bool {
	_, err := getSecret(client, name)
	return apierrors.IsNotFound(err)
}

func TestFillsTokenSecret(t *testing.T) {
	client := start(t, serviceAccount("build", "u1"), tokenSecret("build-token", "build", ""))
	controllertest.WaitFor(t, "filled secret", func() bool { return filled(client, "build-token") })
	s, _ := getSecret(client, "build-token")
	if got, want := string(s.Data[corev1.ServiceAccountTokenKey]), "ns/build/u1/build-token"; got != want {
		t.Errorf("token = %q, want %q", got, want)
	}
	if got := s.Annotations[corev1.ServiceAccountUIDKey]; got != "u1" {
		t.Errorf("uid annotation = %q, want u1", got)
	}
}

func TestRepairs(t *testing.T) {
	for name, tc := range map[string]struct {
		edit      func(*corev1.Secret)
		wantToken string
	}{
		"token removed": {func(s *corev1.Secret) { delete(s.Data, corev1.ServiceAccountTokenKey) }, "ns/build/u1/build-token"},
		// As upstream: a token that is present is never replaced (a forged
		// one simply fails to authenticate), but the CA is restored.
		"token and ca tampered": {func(s *corev1.Secret) {
			s.Data[corev1.ServiceAccountTokenKey] = []byte("forged")
			s.Data[corev1.ServiceAccountRootCAKey] = []byte("other CA")
		}, "forged"},
		"namespace emptied": {func(s *corev1.Secret) { s.Data[corev1.ServiceAccountNamespaceKey] = nil }, "ns/build/u1/build-token"},
	} {
		t.Run(name, func(t *testing.T) {
			client := start(t, serviceAccount("build", "u1"), tokenSecret("build-token", "build", ""))
			controllertest.WaitFor(t, "filled secret", func() bool { return filled(client, "build-token") })
			s, _ := getSecret(client, "build-token")
			tc.edit(s)
			if _, err := client.CoreV1().Secrets("ns").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			controllertest.WaitFor(t, "repaired secret", func() bool {
				s, err := getSecret(client, "build-token")
				return filled(client, "build-token") && err == nil && string(s.Data[corev1.ServiceAccountTokenKey]) == tc.wantToken
			})
		})
	}
}

func TestDeletesSecretWithoutServiceAccount(t *testing.T) {
	client := start(t, serviceAccount("build", "u1"),
		tokenSecret("orphan", "missing", ""),
		tokenSecret("stale-uid", "build", "old-uid"),
		tokenSecret("good", "build", "u1"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: "ns",
			Annotations: map[string]string{corev1.ServiceAccountNameKey: "missing"}}})
	controllertest.WaitFor(t, "orphan deleted", func() bool { return gone(client, "orphan") })
	controllertest.WaitFor(t, "stale-uid deleted", func() bool { return gone(client, "stale-uid") })
	controllertest.WaitFor(t, "good filled", func() bool { return filled(client, "good") })
	if gone(client, "opaque") {
		t.Error("an opaque secret was deleted")
	}
}

func TestServiceAccountDeletionDeletesItsTokens(t *testing.T) {
	client := start(t, serviceAccount("build", "u1"), serviceAccount("other", "u2"),
		tokenSecret("build-a", "build", ""), tokenSecret("build-b", "build", ""), tokenSecret("other-a", "other", ""))
	for _, n := range []string{"build-a", "build-b", "other-a"} {
		controllertest.WaitFor(t, n+" filled", func() bool { return filled(client, n) })
	}
	if err := client.CoreV1().ServiceAccounts("ns").Delete(context.Background(), "build", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "build-a deleted", func() bool { return gone(client, "build-a") })
	controllertest.WaitFor(t, "build-b deleted", func() bool { return gone(client, "build-b") })
	if gone(client, "other-a") {
		t.Error("another service account's token was deleted")
	}
}

func TestSecretDeletionDropsReference(t *testing.T) {
	client := start(t, serviceAccount("build", "u1", "build-token", "keep"), tokenSecret("build-token", "build", ""))
	controllertest.WaitFor(t, "filled secret", func() bool { return filled(client, "build-token") })
	if err := client.CoreV1().Secrets("ns").Delete(context.Background(), "build-token", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "reference dropped", func() bool {
		sa, err := client.CoreV1().ServiceAccounts("ns").Get(context.Background(), "build", metav1.GetOptions{})
		return err == nil && len(sa.Secrets) == 1 && sa.Secrets[0].Name == "keep"
	})
}

func TestBelongsTo(t *testing.T) {
	for _, tc := range []struct {
		name      string
		s         *corev1.Secret
		saName    string
		saUID     string
		belonging bool
	}{
		{"no uid recorded", tokenSecret("s", "sa", ""), "sa", "u1", true},
		{"same uid", tokenSecret("s", "sa", "u1"), "sa", "u1", true},
		{"other uid", tokenSecret("s", "sa", "u0"), "sa", "u1", false},
		{"other name", tokenSecret("s", "sb", ""), "sa", "u1", false},
		{"not a token", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{corev1.ServiceAccountNameKey: "sa"}}}, "sa", "u1", false},
	} {
		if got := belongsTo(tc.s, tc.saName, tc.saUID); got != tc.belonging {
			t.Errorf("%s: belongsTo = %v, want %v", tc.name, got, tc.belonging)
		}
	}
}
