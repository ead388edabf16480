package apiserver_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
	"github.com/skiff-dev/skiff/internal/testserver"
)

const testIssuer = "https://kubernetes.default.svc"

// startTokenServer runs a server with access control that issues
// ServiceAccount tokens; the bearer token "admin" is a cluster admin.
func startTokenServer(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := satoken.NewIssuer(testIssuer, key)
	if err != nil {
		t.Fatal(err)
	}
	admin := func(token string) (*authn.User, bool) {
		if token == "admin" {
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		}
		return nil, false
	}
	return testserver.StartWith(t, testserver.Options{
		Authenticator: authn.NewBearerToken(admin),
		AccessControl: true,
		ServiceAccountTokens: &apiserver.ServiceAccountTokens{
			Issuer: iss, MaxExpiration: 48 * time.Hour, ExtendExpiration: true,
		},
	}).URL
}

// whoami asks the server who the token's bearer is.
func whoami(ctx context.Context, url, token string) (*authenticationv1.UserInfo, error) {
	c := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, QPS: -1, BearerToken: token})
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	return &r.Status.UserInfo, nil
}

func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenRequestAndAuthentication(t *testing.T) {
	url := startTokenServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, QPS: -1, BearerToken: "admin"})
	sas := admin.CoreV1().ServiceAccounts("default")
	uids := map[string]string{}
	for _, name := range []string{"robot", "other"} {
		sa, err := sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(sa.UID)
	}
	pod, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podRef := &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p", UID: pod.UID}
	// Admission gave the pod its token volume, and refuses unknown accounts.
	if len(pod.Spec.Volumes) != 1 || !strings.HasPrefix(pod.Spec.Volumes[0].Name, "kube-api-access-") ||
		pod.Spec.Containers[0].VolumeMounts[0].MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" {
		t.Errorf("pod not given kube-api-access: %+v", pod.Spec)
	}
	_, err = admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec:       corev1.PodSpec{ServiceAccountName: "ghost", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `error looking up service account default/ghost: serviceaccount "ghost" not found`) {
		t.Errorf("pod with unknown service account: %v", err)
	}

	// Protobuf, as the kubelet sends it.
	pcfg := &rest.Config{Host: url, QPS: -1, BearerToken: "admin", ContentConfig: rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"}}
	tr, err := kubernetes.NewForConfigOrDie(pcfg).CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: podRef}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *tr.Spec.ExpirationSeconds; got != 3600 {
		t.Errorf("default expiration %d", got)
	}
	if d := time.Until(tr.Status.ExpirationTimestamp.Time); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("expiration timestamp %v", tr.Status.ExpirationTimestamp)
	}
	if len(tr.Spec.Audiences) != 1 || tr.Spec.Audiences[0] != testIssuer {
		t.Errorf("default audiences %v", tr.Spec.Audiences)
	}

	// The token authenticates as the ServiceAccount, from its pod.
	var who *authenticationv1.UserInfo
	testserver.Eventually(t, "the token to authenticate", func() bool {
		who, err = whoami(ctx, url, tr.Status.Token)
		return err == nil
	})
	if who.Username != "system:serviceaccount:default:robot" || who.UID != uids["robot"] {
		t.Errorf("user %+v", who)
	}
	if got := strings.Join(who.Groups, ","); got != "system:serviceaccounts,system:serviceaccounts:default,system:authenticated" {
		t.Errorf("groups %s", got)
	}
	if got := who.Extra[satoken.ExtraPodName]; len(got) != 1 || got[0] != "p" {
		t.Errorf("extra %v", who.Extra)
	}
	// It is not an admin: RBAC decides what it may do.
	robot := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, QPS: -1, BearerToken: tr.Status.Token})
	if _, err := robot.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("service account listed secrets: %v", err)
	}

	// The kubelet's 3607 s tokens live a year but say when to refresh.
	ext, err := sas.CreateToken(ctx, "robot", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](3607), BoundObjectRef: podRef}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := tokenClaims(t, ext.Status.Token)
	if life := c["exp"].(float64) - c["iat"].(float64); life != 365*24*3600 {
		t.Errorf("extended lifetime %v", life)
	}
	k8s := c["kubernetes.io"].(map[string]any)
	if w := k8s["warnafter"].(float64) - c["iat"].(float64); w != 3607 {
		t.Errorf("warnafter after %v s", w)
	}
	if d := time.Until(ext.Status.ExpirationTimestamp.Time); d > 3607*time.Second {
		t.Errorf("extended token reports expiry %v", ext.Status.ExpirationTimestamp)
	}

	// Over the maximum is shortened.
	long, err := sas.CreateToken(ctx, "other", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](7 * 24 * 3600), Audiences: []string{"vault"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *long.Spec.ExpirationSeconds != 48*3600 {
		t.Errorf("max expiration not applied: %d", *long.Spec.ExpirationSeconds)
	}
	if aud := tokenClaims(t, long.Status.Token)["aud"].([]any); len(aud) != 1 || aud[0] != "vault" {
		t.Errorf("aud %v", aud)
	}
	// A token for another audience does not authenticate to the API.
	if _, err := whoami(ctx, url, long.Status.Token); !apierrors.IsUnauthorized(err) {
		t.Errorf("token for vault used on the API: %v", err)
	}

	refused := []struct {
		name, sa string
		spec     authenticationv1.TokenRequestSpec
		check    func(error) bool
	}{
		{"too short", "robot", authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](599)}, apierrors.IsInvalid},
		{"no such service account", "ghost", authenticationv1.TokenRequestSpec{}, apierrors.IsNotFound},
		{"no such pod", "robot", authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "nope"}}, apierrors.IsNotFound},
		{"pod of another account", "other", authenticationv1.TokenRequestSpec{BoundObjectRef: podRef}, apierrors.IsBadRequest},
		{"stale pod uid", "robot", authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p", UID: "old"}}, apierrors.IsConflict},
		{"unsupported kind", "robot", authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"}}, apierrors.IsBadRequest},
	}
	for _, tc := range refused {
		_, err := sas.CreateToken(ctx, tc.sa, &authenticationv1.TokenRequest{Spec: tc.spec}, metav1.CreateOptions{})
		if !tc.check(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}

	// Deleting the pod revokes its tokens.
	if err := admin.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "the token to be revoked", func() bool {
		_, err := whoami(ctx, url, tr.Status.Token)
		return apierrors.IsUnauthorized(err)
	})
}

func TestServiceAccountIssuerDiscovery(t *testing.T) {
	url := startTokenServer(t)
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		req.Header.Set("Authorization", "Bearer admin")
		return http.DefaultClient.Do(req)
	}
	resp, err := get("/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d: %v", resp.StatusCode, err)
	}
	if cfg["issuer"] != testIssuer || cfg["jwks_uri"] != testIssuer+"/openid/v1/jwks" {
		t.Fatalf("openid-configuration %v", cfg)
	}
	resp2, err := get("/openid/v1/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != 200 || resp2.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("jwks: %d %s", resp2.StatusCode, resp2.Header.Get("Content-Type"))
	}
}
