package apiserver_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// wantBadRequest checks err is the 400 upstream gives for an unsupported
// field label, with its wording.
func wantBadRequest(t *testing.T, err error, msg string) {
	t.Helper()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), msg) {
		t.Errorf("got %v, want 400 BadRequest %q", err, msg)
	}
}

func csrRequest(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestCSRSignerNameFieldSelector(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	csrs := s.Client.CertificatesV1().CertificateSigningRequests()
	req := csrRequest(t)
	for name, signer := range map[string]string{"a": "example.com/one", "b": "example.com/two"} {
		csr := &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request: req, SignerName: signer, Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature},
			},
		}
		if _, err := csrs.Create(ctx, csr, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CSR %s: %v", name, err)
		}
	}
	list, err := csrs.List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=example.com/two"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "b" {
		t.Errorf("spec.signerName=example.com/two listed %d items, want only b", len(list.Items))
	}
	_, err = csrs.List(ctx, metav1.ListOptions{FieldSelector: "metadata.namespace=x"})
	wantBadRequest(t, err, "field label not supported: metadata.namespace")
}

func TestEventsV1FieldSelectors(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	events := s.Client.EventsV1().Events("default")
	w, err := events.Watch(ctx, metav1.ListOptions{FieldSelector: "regarding.name=p2"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i, name := range []string{"p1", "p2"} {
		ev := &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: "e" + name},
			EventTime:           metav1.NewMicroTime(time.Now()),
			Regarding:           corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
			Reason:              []string{"Started", "Killing"}[i],
			Type:                corev1.EventTypeNormal,
			Action:              "Act",
			ReportingController: "example.com/" + name,
			ReportingInstance:   "i",
		}
		if _, err := events.Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create event: %v", err)
		}
	}
	for sel, want := range map[string]string{
		"regarding.name=p1":                                          "ep1",
		"regarding.uid=uid-p2":                                       "ep2",
		"regarding.kind=Pod,reason=Killing":                          "ep2",
		"reportingController=example.com/p1":                         "ep1",
		"source=example.com/p2":                                      "ep2",
		"type=Normal,regarding.namespace=default,regarding.name!=p2": "ep1",
	} {
		list, err := events.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Errorf("%s: %v", sel, err)
			continue
		}
		if len(list.Items) != 1 || list.Items[0].Name != want {
			t.Errorf("%s listed %d events, want only %s", sel, len(list.Items), want)
		}
	}
	select {
	case e := <-w.ResultChan():
		if ev, ok := e.Object.(*eventsv1.Event); e.Type != watch.Added || !ok || ev.Name != "ep2" {
			t.Errorf("watch regarding.name=p2 got %s %v", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event for regarding.name=p2")
	}
	// The core spelling is not the events.k8s.io one.
	_, err = events.List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p1"})
	wantBadRequest(t, err, "field label not supported: involvedObject.name")
}

func TestUnsupportedFieldLabelWording(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	_, err := s.Client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{FieldSelector: "data.x=1"})
	wantBadRequest(t, err, `"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"`)
	_, err = s.Client.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{FieldSelector: "status.active=1"})
	wantBadRequest(t, err, `field label "status.active" not supported for Job`)
	_, err = s.Client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{FieldSelector: "status.replicas=1"})
	wantBadRequest(t, err, `"status.replicas" is not a known field selector`)
	_, err = s.Client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.namespace=x"})
	wantBadRequest(t, err, "field label not supported: metadata.namespace")
	// Cluster-scoped kinds without a conversion of their own accept it.
	if _, err := s.Client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{FieldSelector: "metadata.namespace="}); err != nil {
		t.Errorf("clusterroles metadata.namespace=: %v", err)
	}
}

// wantImmutable checks err is the 422 refusing a change of fields of an
// immutable ConfigMap or Secret.
func wantImmutable(t *testing.T, err error, fields ...string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("got %v, want 422 Invalid", err)
	}
	causes := err.(apierrors.APIStatus).Status().Details.Causes
	var got []string
	for _, c := range causes {
		if c.Type != metav1.CauseType(field.ErrorTypeForbidden) || c.Message != "Forbidden: field is immutable when `immutable` is set" {
			t.Errorf("cause %+v is not upstream's", c)
		}
		got = append(got, c.Field)
	}
	if strings.Join(got, ",") != strings.Join(fields, ",") {
		t.Errorf("causes on %v, want %v", got, fields)
	}
}

func TestImmutableConfigMap(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Immutable:  ptr.To(true),
		Data:       map[string]string{"a": "1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	changed := cm.DeepCopy()
	changed.Data["a"] = "2"
	_, err = cms.Update(ctx, changed, metav1.UpdateOptions{})
	wantImmutable(t, err, "data")

	_, err = cms.Patch(ctx, "c", types.MergePatchType, []byte(`{"immutable":false,"binaryData":{"b":"eA=="}}`), metav1.PatchOptions{})
	wantImmutable(t, err, "immutable", "binaryData")

	cm.Labels = map[string]string{"l": "v"}
	if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil || cm.Labels["l"] != "v" {
		t.Fatalf("metadata update of an immutable ConfigMap: %v", err)
	}
	if err := cms.Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete immutable ConfigMap: %v", err)
	}
}

func TestImmutableSecret(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	secrets := s.Client.CoreV1().Secrets("default")
	sec, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Immutable:  ptr.To(true),
		Data:       map[string][]byte{"a": []byte("1")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = secrets.Patch(ctx, "s", types.MergePatchType, []byte(`{"stringData":{"a":"2"}}`), metav1.PatchOptions{})
	wantImmutable(t, err, "data")
	changed := sec.DeepCopy()
	changed.Immutable = nil
	_, err = secrets.Update(ctx, changed, metav1.UpdateOptions{})
	wantImmutable(t, err, "immutable")

	if _, err := secrets.Patch(ctx, "s", types.MergePatchType, []byte(`{"metadata":{"annotations":{"k":"v"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("metadata patch of an immutable Secret: %v", err)
	}
	got, err := secrets.Get(ctx, "s", metav1.GetOptions{})
	if err != nil || string(got.Data["a"]) != "1" {
		t.Fatalf("secret after refused changes: %v %v", got, err)
	}
	if err := secrets.Delete(ctx, "s", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete immutable Secret: %v", err)
	}
}
