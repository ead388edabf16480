package apiserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
)

const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io"

// TestTableRequestForNonTableEndpointIs406 makes the request of upstream's
// conformance spec "should return a 406 for a backend which does not
// implement metadata".
func TestTableRequestForNonTableEndpointIs406(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	sar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/", Verb: "get"},
	}}
	table := &metav1.Table{}
	err := s.Client.AuthorizationV1().RESTClient().Post().Resource("selfsubjectaccessreviews").
		SetHeader("Accept", tableAccept).Body(sar).Do(ctx).Into(table)
	var st apierrors.APIStatus
	if !errors.As(err, &st) || st.Status().Code != http.StatusNotAcceptable || st.Status().Reason != metav1.StatusReasonNotAcceptable {
		t.Fatalf("Table SelfSubjectAccessReview: %v, want 406 NotAcceptable", err)
	}

	// A client that offers a fallback gets it.
	body := `{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"nonResourceAttributes":{"path":"/","verb":"get"}}}`
	code, out := httpCall(t, http.MethodPost, s.URL+"/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
		tableAccept+",application/json", "application/json", body)
	var got authorizationv1.SelfSubjectAccessReview
	if err := json.Unmarshal(out, &got); code != http.StatusCreated || err != nil || got.Kind != "SelfSubjectAccessReview" {
		t.Errorf("with a JSON fallback: %d %s", code, out)
	}

	// Eviction has no table either.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out = httpCall(t, http.MethodPost, s.URL+"/api/v1/namespaces/default/pods/p/eviction", tableAccept, "application/json",
		`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p","namespace":"default"}}`)
	if code != http.StatusNotAcceptable {
		t.Errorf("Table eviction: %d %s, want 406", code, out)
	}
	if _, err := s.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Errorf("pod after refused eviction: %v", err)
	}

	// Stored resources still render tables.
	code, out = httpCall(t, http.MethodGet, s.URL+"/api/v1/namespaces/default/pods/p", tableAccept, "", "")
	if err := json.Unmarshal(out, table); code != http.StatusOK || err != nil || table.Kind != "Table" || len(table.Rows) != 1 {
		t.Errorf("Table GET pod: %d %s", code, out)
	}
}
