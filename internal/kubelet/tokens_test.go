package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// tokenIssuer answers TokenRequests on a fake clientset with numbered
// tokens and records the requests.
type tokenIssuer struct {
	mu       sync.Mutex
	now      time.Time
	fail     bool
	requests []*authenticationv1.TokenRequest
	names    []string
}

func (ti *tokenIssuer) install(client *fake.Clientset) {
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		ti.mu.Lock()
		defer ti.mu.Unlock()
		if ti.fail {
			return true, nil, errors.New("server unavailable")
		}
		req := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		ti.requests = append(ti.requests, req)
		ti.names = append(ti.names, a.GetNamespace()+"/"+ca.(k8stesting.CreateActionImpl).Name)
		req.Status = authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("token-%d", len(ti.requests)),
			ExpirationTimestamp: metav1.NewTime(ti.now.Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second)),
		}
		return true, req, nil
	})
}

func (ti *tokenIssuer) count() int {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return len(ti.requests)
}

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "pod-uid"},
		Spec:       v1.PodSpec{ServiceAccountName: "builder"},
	}
}

func TestTokenRequestAndRefresh(t *testing.T) {
	client := fake.NewClientset()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ti := &tokenIssuer{now: start}
	ti.install(client)
	m := newTokenManager(client)
	now := start
	m.now = func() time.Time { return now }
	exp := int64(1000)
	src := &v1.ServiceAccountTokenProjection{Audience: "vault", ExpirationSeconds: &exp, Path: "token"}
	pod := testPod()
	ctx := context.Background()

	tok, err := m.token(ctx, pod, src)
	if err != nil || tok != "token-1" {
		t.Fatalf("token = %q, %v", tok, err)
	}
	req := ti.requests[0]
	if ti.names[0] != "ns/builder" {
		t.Errorf("request for %s, want ns/builder", ti.names[0])
	}
	if got := req.Spec.Audiences; len(got) != 1 || got[0] != "vault" {
		t.Errorf("audiences = %v", got)
	}
	if *req.Spec.ExpirationSeconds != 1000 {
		t.Errorf("expirationSeconds = %d", *req.Spec.ExpirationSeconds)
	}
	if b := req.Spec.BoundObjectRef; b == nil || b.Kind != "Pod" || b.Name != "web" || b.UID != "pod-uid" || b.APIVersion != "v1" {
		t.Errorf("boundObjectRef = %+v", b)
	}

	// Before 80 % of the life the cached token is served.
	now = start.Add(799 * time.Second)
	if tok, _ := m.token(ctx, pod, src); tok != "token-1" || ti.count() != 1 {
		t.Errorf("at 79.9%%: token %q after %d requests, want the cached one", tok, ti.count())
	}
	// From 80 % on it is refreshed.
	now = start.Add(800 * time.Second)
	ti.now = now
	if tok, _ := m.token(ctx, pod, src); tok != "token-2" {
		t.Errorf("at 80%%: token %q, want a new one", tok)
	}

	// A failed refresh keeps serving the still valid token.
	now = now.Add(900 * time.Second)
	ti.fail = true
	if tok, err := m.token(ctx, pod, src); err != nil || tok != "token-2" {
		t.Errorf("failed refresh: %q, %v; want the old token", tok, err)
	}
	// Once expired, the failure surfaces.
	now = now.Add(200 * time.Second)
	if _, err := m.token(ctx, pod, src); err == nil {
		t.Error("expired token served after failed refresh")
	}
}

func TestTokenAudienceAndDefaults(t *testing.T) {
	client := fake.NewClientset()
	ti := &tokenIssuer{now: time.Now()}
	ti.install(client)
	m := newTokenManager(client)
	pod := testPod()
	pod.Spec.ServiceAccountName = ""
	if _, err := m.token(context.Background(), pod, &v1.ServiceAccountTokenProjection{Path: "t"}); err != nil {
		t.Fatal(err)
	}
	req := ti.requests[0]
	if len(req.Spec.Audiences) != 0 || *req.Spec.ExpirationSeconds != defaultTokenExpiration || ti.names[0] != "ns/default" {
		t.Errorf("request = %+v for %s", req.Spec, ti.names[0])
	}
	// Different audiences are different tokens; forgetPod drops them all.
	if _, err := m.token(context.Background(), pod, &v1.ServiceAccountTokenProjection{Path: "t", Audience: "other"}); err != nil {
		t.Fatal(err)
	}
	if ti.count() != 2 {
		t.Errorf("%d requests, want 2", ti.count())
	}
	m.forgetPod(pod.UID)
	if len(m.tokens) != 0 {
		t.Errorf("%d tokens left after forgetPod", len(m.tokens))
	}
}

// CSI tokenRequests share the cache and also get the token's expiry.
func TestPodTokenForCSI(t *testing.T) {
	client := fake.NewClientset()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ti := &tokenIssuer{now: start}
	ti.install(client)
	m := newTokenManager(client)
	m.now = func() time.Time { return start }
	pod := testPod()
	exp := int64(600)
	st, err := m.PodToken(context.Background(), pod, "", &exp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Token != "token-1" || !st.ExpirationTimestamp.Time.Equal(start.Add(600*time.Second)) {
		t.Errorf("status = %+v, want token-1 expiring after 600 s", st)
	}
	if req := ti.requests[0]; len(req.Spec.Audiences) != 0 || req.Spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("request = %+v, want the API server's audiences, bound to the pod", req.Spec)
	}
	// A projected volume with the same audience and expiry gets the cached token.
	if tok, err := m.token(context.Background(), pod, &v1.ServiceAccountTokenProjection{ExpirationSeconds: &exp, Path: "t"}); err != nil || tok != "token-1" || ti.count() != 1 {
		t.Errorf("projected token = %q, %v after %d requests, want the cached token-1", tok, err, ti.count())
	}
	ti.fail = true
	if _, err := m.PodToken(context.Background(), pod, "other", nil); err == nil {
		t.Error("PodToken succeeded though the TokenRequest failed")
	}
}

func TestNeedsRefreshAfterADay(t *testing.T) {
	issued := time.Now()
	tok := &cachedToken{issued: issued, expires: issued.Add(365 * 24 * time.Hour)}
	if tok.needsRefresh(issued.Add(23 * time.Hour)) {
		t.Error("refresh before a day")
	}
	if !tok.needsRefresh(issued.Add(24 * time.Hour)) {
		t.Error("no refresh after a day")
	}
}

// kubeAPIAccess is the volume the API server's admission adds to pods.
func kubeAPIAccess() v1.Volume {
	exp, mode := int64(3607), int32(0o644)
	return v1.Volume{Name: "kube-api-access-x1", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		DefaultMode: &mode,
		Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{ExpirationSeconds: &exp, Path: "token"}},
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []v1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}

func TestKubeAPIAccessVolume(t *testing.T) {
	k := testKubelet(t)
	k.cfg.DataDir = t.TempDir()
	client := fake.NewClientset()
	start := time.Now()
	ti := &tokenIssuer{now: start}
	ti.install(client)
	k.tokens = newTokenManager(client)
	now := start
	k.tokens.now = func() time.Time { return now }

	pod := testPod()
	vol := kubeAPIAccess()
	pod.Spec.Volumes = []v1.Volume{vol}
	ctx := context.Background()

	// The CA ConfigMap is not published yet: the mount fails (and the
	// sync retries), it does not project a volume without the CA.
	if _, err := k.setupVolumes(ctx, pod); err == nil {
		t.Fatal("volume set up without kube-root-ca.crt")
	}
	k.configMaps.(*staticObjects[*v1.ConfigMap]).add(&v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt", Namespace: "ns"}, Data: map[string]string{"ca.crt": "PEM"}})
	paths, err := k.setupVolumes(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	dir := paths[vol.Name]
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for name, want := range map[string]string{"token": "token-1", "ca.crt": "PEM", "namespace": "ns"} {
		if got := read(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "token")); err != nil || target != filepath.Join(dataDirLink, "token") {
		t.Errorf("token is not a link through %s: %q, %v", dataDirLink, target, err)
	}

	// A later sync before 80 % of 3607 s keeps the file; after, rewrites it.
	now = start.Add(time.Hour / 2)
	if _, err := k.setupVolumes(ctx, pod); err != nil || read("token") != "token-1" {
		t.Errorf("token rewritten early (err %v)", err)
	}
	now = start.Add(2886 * time.Second)
	ti.now = now
	if _, err := k.setupVolumes(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := read("token"); got != "token-2" {
		t.Errorf("token after 80%% = %q, want token-2", got)
	}
}

func TestPodReferences(t *testing.T) {
	ref := func(name string) v1.LocalObjectReference { return v1.LocalObjectReference{Name: name} }
	pod := &v1.Pod{Spec: v1.PodSpec{
		Volumes: []v1.Volume{
			{VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: ref("cm-vol")}}},
			{VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec-vol"}}},
			kubeAPIAccess(),
			{VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
				{Secret: &v1.SecretProjection{LocalObjectReference: ref("sec-proj")}}}}}},
		},
		InitContainers: []v1.Container{{EnvFrom: []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: ref("sec-init")}}}}},
		Containers: []v1.Container{{
			EnvFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: ref("cm-vol")}}},
			Env: []v1.EnvVar{
				{Name: "A", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref("cm-env"), Key: "k"}}},
				{Name: "B", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref("sec-env"), Key: "k"}}},
				{Name: "C", Value: "plain"},
			},
		}},
	}}
	cms, secrets := podReferences(pod)
	if fmt.Sprint(cms) != "[cm-env cm-vol kube-root-ca.crt]" {
		t.Errorf("configmaps = %v", cms)
	}
	if fmt.Sprint(secrets) != "[sec-env sec-init sec-proj sec-vol]" {
		t.Errorf("secrets = %v", secrets)
	}
}
