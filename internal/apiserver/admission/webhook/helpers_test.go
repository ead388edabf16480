package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// testCert is a self-signed serving certificate for the names webhooks are
// reached by in these tests; its PEM is the caBundle.
var testCert = sync.OnceValues(func() (tls.Certificate, []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "webhook-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"hook.webhooks.svc", "localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
})

// reviewHandler answers one AdmissionReview.
type reviewHandler func(r *http.Request, review *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse

// recorder is a webhook server that keeps the reviews it was sent.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	reviews []*admissionv1.AdmissionReview
	hosts   []string
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reviews)
}

func (r *recorder) last() *admissionv1.AdmissionReview {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reviews[len(r.reviews)-1]
}

// newWebhookServer serves handle over TLS with testCert. The answer's uid
// and type are filled in unless handle sets them.
func newWebhookServer(t *testing.T, handle reviewHandler) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.reviews = append(rec.reviews, &review)
		rec.hosts = append(rec.hosts, r.Host)
		rec.mu.Unlock()
		resp := handle(r, &review)
		if resp == nil {
			return // the handler wrote its own answer
		}
		if resp.UID == "" {
			resp.UID = review.Request.UID
		}
		out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	cert, _ := testCert()
	rec.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	rec.StartTLS()
	t.Cleanup(rec.Close)
	return rec
}

func allow(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

// fakeConfigs is a ConfigLister over fixed slices.
type fakeConfigs struct {
	mutating   []*admissionregistrationv1.MutatingWebhookConfiguration
	validating []*admissionregistrationv1.ValidatingWebhookConfiguration
}

func (f *fakeConfigs) MutatingWebhookConfigurations() []*admissionregistrationv1.MutatingWebhookConfiguration {
	return f.mutating
}

func (f *fakeConfigs) ValidatingWebhookConfigurations() []*admissionregistrationv1.ValidatingWebhookConfiguration {
	return f.validating
}

// fakeNamespaces serves namespaces from a map.
type fakeNamespaces map[string]map[string]string

func (f fakeNamespaces) GetNamespace(_ context.Context, name string) (*corev1.Namespace, error) {
	l, ok := f[name]
	if !ok {
		return nil, apierrors.NewNotFound(corev1.Resource("namespaces"), name)
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, nil
}

// fakeResolver sends every service to one address.
type fakeResolver struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func (f *fakeResolver) ResolveService(_ context.Context, ns, name string, port int32) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, ns+"/"+name+":"+itoa(port))
	return f.addr, nil
}

func itoa(i int32) string { return big.NewInt(int64(i)).String() }

func ptr[T any](v T) *T { return &v }

// webhookFor returns a ValidatingWebhook for pods in every namespace,
// reached by URL at srv.
func validatingFor(name string, srv *recorder) admissionregistrationv1.ValidatingWebhook {
	_, ca := testCert()
	return admissionregistrationv1.ValidatingWebhook{
		Name:                    name,
		ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr(srv.URL + "/validate"), CABundle: ca},
		Rules:                   []admissionregistrationv1.RuleWithOperations{podRule()},
		FailurePolicy:           ptr(admissionregistrationv1.Fail),
		MatchPolicy:             ptr(admissionregistrationv1.Equivalent),
		NamespaceSelector:       &metav1.LabelSelector{},
		ObjectSelector:          &metav1.LabelSelector{},
		SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr(int32(10)),
		AdmissionReviewVersions: []string{"v1"},
	}
}

func mutatingFor(name string, srv *recorder) admissionregistrationv1.MutatingWebhook {
	v := validatingFor(name, srv)
	return admissionregistrationv1.MutatingWebhook{
		Name: v.Name, ClientConfig: v.ClientConfig, Rules: v.Rules, FailurePolicy: v.FailurePolicy,
		MatchPolicy: v.MatchPolicy, NamespaceSelector: v.NamespaceSelector, ObjectSelector: v.ObjectSelector,
		SideEffects: v.SideEffects, TimeoutSeconds: v.TimeoutSeconds, AdmissionReviewVersions: v.AdmissionReviewVersions,
		ReinvocationPolicy: ptr(admissionregistrationv1.NeverReinvocationPolicy),
	}
}

func podRule() admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
			Scope: ptr(admissionregistrationv1.AllScopes),
		},
	}
}

func validating(hooks ...admissionregistrationv1.ValidatingWebhook) *fakeConfigs {
	return &fakeConfigs{validating: []*admissionregistrationv1.ValidatingWebhookConfiguration{{
		ObjectMeta: metav1.ObjectMeta{Name: "config", UID: "uid-v", ResourceVersion: "1"},
		Webhooks:   hooks,
	}}}
}

func mutating(hooks ...admissionregistrationv1.MutatingWebhook) *fakeConfigs {
	return &fakeConfigs{mutating: []*admissionregistrationv1.MutatingWebhookConfiguration{{
		ObjectMeta: metav1.ObjectMeta{Name: "config", UID: "uid-m", ResourceVersion: "1"},
		Webhooks:   hooks,
	}}}
}

// podCreate describes creating pod p in namespace ns by alice.
func podCreate(ns string, labels map[string]string) *admission.Attributes {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	return &admission.Attributes{
		Operation: admission.Create,
		Kind:      corev1.SchemeGroupVersion.WithKind("Pod"),
		Resource:  corev1.SchemeGroupVersion.WithResource("pods"),
		Namespace: ns,
		Name:      "p",
		Object:    pod,
		User:      &authn.User{Name: "alice", UID: "u-1", Groups: []string{"devs", "system:authenticated"}, Extra: map[string][]string{"scope": {"a"}}},
	}
}

func statusCode(t *testing.T, err error) int32 {
	t.Helper()
	var se apierrors.APIStatus
	if !asStatus(err, &se) {
		t.Fatalf("error %v (%T) is not a Status", err, err)
	}
	return se.Status().Code
}

func asStatus(err error, out *apierrors.APIStatus) bool {
	s, ok := err.(apierrors.APIStatus)
	if ok {
		*out = s
	}
	return ok
}
