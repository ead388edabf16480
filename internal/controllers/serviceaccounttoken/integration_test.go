package serviceaccounttoken

import (
	"context"
	"log/slog"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
	"github.com/skiff-dev/skiff/internal/testserver"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

// TestFilledTokenAuthenticates runs the controller against a real API
// server and uses the token it stores: it authenticates as the
// ServiceAccount until the Secret is deleted.
func TestFilledTokenAuthenticates(t *testing.T) {
	key, err := satoken.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := satoken.NewIssuer("https://kubernetes.default.svc", key)
	if err != nil {
		t.Fatal(err)
	}
	admins := func(token string) (*authn.User, bool) {
		if token != "admin" {
			return nil, false
		}
		return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
	}
	srv := testserver.StartWith(t, testserver.Options{
		Authenticator:        authn.NewBearerToken(admins),
		AccessControl:        true,
		ServiceAccountTokens: &apiserver.ServiceAccountTokens{Issuer: issuer},
	})
	admin := kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.URL, BearerToken: "admin", QPS: -1})
	sign := func(ns, sa, uid, secret string) (string, error) {
		return issuer.IssueLegacy(ns, satoken.Ref{Name: sa, UID: uid}, secret)
	}
	factory := informers.NewSharedInformerFactory(admin, 0)
	c := New(admin, factory, sign, []byte(testCA), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	controllertest.Run(t, ctx, factory, c.Run)

	sa, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// As upstream, the API server refuses a token Secret that names no
	// ServiceAccount.
	unnamed := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unnamed"}, Type: corev1.SecretTypeServiceAccountToken}
	if _, err := admin.CoreV1().Secrets("default").Create(ctx, unnamed, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("token secret without service account name: %v, want Invalid", err)
	}
	secret := tokenSecret("ci-token", "ci", "")
	secret.Namespace = "default"
	if _, err := admin.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var token string
	testserver.Eventually(t, "filled secret", func() bool {
		s, err := admin.CoreV1().Secrets("default").Get(ctx, "ci-token", metav1.GetOptions{})
		token = string(s.Data[corev1.ServiceAccountTokenKey])
		return err == nil && token != ""
	})

	review, err := srv.ClientWithToken(token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review with the stored token: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "system:serviceaccount:default:ci" || u.UID != string(sa.UID) {
		t.Errorf("authenticated as %+v", u)
	}

	// Deleting the ServiceAccount deletes the Secret, and the token stops working.
	if err := admin.CoreV1().ServiceAccounts("default").Delete(ctx, "ci", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "token secret deleted", func() bool {
		_, err := admin.CoreV1().Secrets("default").Get(ctx, "ci-token", metav1.GetOptions{})
		return err != nil
	})
	if _, err := srv.ClientWithToken(token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		t.Error("the token of a deleted secret still authenticates")
	}
}
