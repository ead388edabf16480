package apiserver_test

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestImpersonation: a caller allowed to impersonate becomes the named
// user, groups and extras (keys percent-decoded, as kubectl encodes them);
// one who is not gets 403 naming what it may not impersonate.
func TestImpersonation(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t)
	as := func(token string, imp rest.ImpersonationConfig) kubernetes.Interface {
		cfg := rest.AnonymousClientConfig(s.Config)
		cfg.BearerToken, cfg.Impersonate = token, imp
		return kubernetes.NewForConfigOrDie(cfg)
	}
	imp := rest.ImpersonationConfig{
		UserName: "jane", Groups: []string{"devs"},
		Extra: map[string][]string{"example.com/team": {"blue"}},
	}
	review, err := as("admin", imp).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ui := review.Status.UserInfo
	if ui.Username != "jane" || len(ui.Groups) != 2 || ui.Groups[0] != "devs" || ui.Groups[1] != "system:authenticated" {
		t.Errorf("impersonated user = %+v, want jane in devs and system:authenticated", ui)
	}
	if got := ui.Extra["example.com/team"]; len(got) != 1 || got[0] != "blue" {
		t.Errorf("impersonated extra = %v, want example.com/team=[blue]", ui.Extra)
	}
	// Impersonating a ServiceAccount gives its groups.
	review, err = as("admin", rest.ImpersonationConfig{UserName: "system:serviceaccount:ns1:robot"}).
		AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := review.Status.UserInfo.Groups; len(g) != 3 || g[0] != "system:serviceaccounts" || g[1] != "system:serviceaccounts:ns1" {
		t.Errorf("impersonated ServiceAccount groups = %v", g)
	}

	_, err = as("mallory", rest.ImpersonationConfig{UserName: "admin"}).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || err.Error() != `users "admin" is forbidden: User "mallory" cannot impersonate resource "users" in API group "" at the cluster scope` {
		t.Errorf("impersonation without the verb: %v", err)
	}
}
