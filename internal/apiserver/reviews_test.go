package apiserver_test

import (
	"context"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAccessReviews: SubjectAccessReview asks the server's own authorizer
// chain about someone else; malformed reviews are 422 and nothing is kept.
func TestAccessReviews(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t)
	admin := s.ClientWithToken("admin")
	sar := func(user string, groups []string, verb, resource, ns string) *authorizationv1.SubjectAccessReview {
		return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: resource, Namespace: ns},
		}}
	}
	// The Node authorizer judges a node's list by the review's field selector.
	nodePCRs := func(fs *authorizationv1.FieldSelectorAttributes) *authorizationv1.SubjectAccessReview {
		r := sar("system:node:n1", []string{"system:nodes"}, "list", "podcertificaterequests", "")
		r.Spec.ResourceAttributes.Group, r.Spec.ResourceAttributes.FieldSelector = "certificates.k8s.io", fs
		return r
	}
	for _, tc := range []struct {
		name    string
		review  *authorizationv1.SubjectAccessReview
		allowed bool
	}{
		{"a member of system:masters", sar("root", []string{"system:masters"}, "delete", "namespaces", ""), true},
		{"an ordinary user", sar("alice", []string{"system:authenticated"}, "list", "pods", "default"), false},
		{"a node reading nodes", sar("system:node:n1", []string{"system:nodes"}, "list", "nodes", ""), true},
		{"a node deleting namespaces", sar("system:node:n1", []string{"system:nodes"}, "delete", "namespaces", ""), false},
		{"a node listing all pod certificate requests", nodePCRs(nil), false},
		{"a node listing its pod certificate requests", nodePCRs(&authorizationv1.FieldSelectorAttributes{RawSelector: "spec.nodeName=n1"}), true},
		{"a node listing another node's", nodePCRs(&authorizationv1.FieldSelectorAttributes{RawSelector: "spec.nodeName=n2"}), false},
		{"a node listing its own, as requirements", nodePCRs(&authorizationv1.FieldSelectorAttributes{Requirements: []metav1.FieldSelectorRequirement{
			{Key: "spec.nodeName", Operator: metav1.FieldSelectorOpIn, Values: []string{"n1"}}}}), true},
		{"a node listing all but its own", nodePCRs(&authorizationv1.FieldSelectorAttributes{Requirements: []metav1.FieldSelectorRequirement{
			{Key: "spec.nodeName", Operator: metav1.FieldSelectorOpNotIn, Values: []string{"n1"}}}}), false},
	} {
		got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, tc.review, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Status.Allowed != tc.allowed {
			t.Errorf("%s: allowed = %v (%s), want %v", tc.name, got.Status.Allowed, got.Status.Reason, tc.allowed)
		}
	}

	noSubject := sar("", nil, "get", "pods", "default")
	if _, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, noSubject, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("review without user or groups: %v, want 422", err)
	}
	both := sar("alice", nil, "get", "pods", "default")
	both.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: "/healthz", Verb: "get"}
	if _, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, both, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("review with resource and non-resource attributes: %v, want 422", err)
	}
	local := &authorizationv1.LocalSubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: "other"}}}
	if _, err := admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, local, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("local review for another namespace: %v, want 422", err)
	}
	rules := &authorizationv1.SelfSubjectRulesReview{}
	// Upstream answers these two with a bare 400, not a validation error.
	if _, err := admin.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, rules, metav1.CreateOptions{}); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "no namespace on request") {
		t.Errorf("rules review without a namespace: %v, want 400 no namespace on request", err)
	}
	if _, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{}, metav1.CreateOptions{}); !apierrors.IsBadRequest(err) {
		t.Errorf("token review without a token: %v, want 400", err)
	}
	labelled := &authorizationv1.LocalSubjectAccessReview{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
		Spec:       authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: "default"}}}
	if _, err := admin.AuthorizationV1().LocalSubjectAccessReviews("default").Create(ctx, labelled, metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "must be empty except for namespace") {
		t.Errorf("local review with labels: %v, want 422 must be empty except for namespace", err)
	}
	// Reviews are answers, never stored objects.
	if _, err := admin.AuthorizationV1().RESTClient().Get().AbsPath("/apis/authorization.k8s.io/v1/subjectaccessreviews").DoRaw(ctx); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("GET of subjectaccessreviews: %v, want 405", err)
	}
}
