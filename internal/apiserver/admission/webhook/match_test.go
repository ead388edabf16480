package webhook

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

func TestSelectorsFilterCalls(t *testing.T) {
	namespaces := fakeNamespaces{"prod": {"env": "prod"}, "dev": {"env": "dev"}}
	tests := []struct {
		name    string
		nsSel   *metav1.LabelSelector
		objSel  *metav1.LabelSelector
		ns      string
		labels  map[string]string
		old     map[string]string
		want    bool
		wantErr int32
	}{
		{"namespace matches", &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, nil, "prod", nil, nil, true, 0},
		{"namespace does not match", &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, nil, "dev", nil, nil, false, 0},
		{"NotIn", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"prod"}}}}, nil, "dev", nil, nil, true, 0},
		{"missing namespace is 404", &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, nil, "gone", nil, nil, false, 404},
		{"object matches", nil, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, "dev", map[string]string{"app": "web"}, nil, true, 0},
		{"object does not match", nil, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, "dev", map[string]string{"app": "db"}, nil, false, 0},
		{"old object matches", nil, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, "dev", map[string]string{"app": "db"}, map[string]string{"app": "web"}, true, 0},
		{"object mismatch hides namespace error", &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, "gone", nil, nil, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWebhookServer(t, allow)
			h := validatingFor("sel.example.com", srv)
			if tc.nsSel != nil {
				h.NamespaceSelector = tc.nsSel
			}
			if tc.objSel != nil {
				h.ObjectSelector = tc.objSel
			}
			v := NewValidating(Deps{Configs: validating(h), Namespaces: namespaces})
			a := podCreate(tc.ns, tc.labels)
			if tc.old != nil {
				old := a.Object.DeepCopyObject().(*corev1.Pod)
				old.Labels = tc.old
				a.Operation, a.OldObject = admission.Update, old
			}
			err := v.Validate(context.Background(), a)
			if tc.wantErr != 0 {
				if err == nil || statusCode(t, err) != tc.wantErr {
					t.Fatalf("err = %v, want code %d", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if called := srv.calls() == 1; called != tc.want {
				t.Errorf("called = %v, want %v", called, tc.want)
			}
		})
	}
}

func TestClusterScopedObjectsIgnoreNamespaceSelector(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := validatingFor("nodes.example.com", srv)
	h.Rules[0].Resources = []string{"nodes"}
	h.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
	v := NewValidating(Deps{Configs: validating(h), Namespaces: fakeNamespaces{}})
	a := &admission.Attributes{
		Operation: admission.Create, Kind: corev1.SchemeGroupVersion.WithKind("Node"),
		Resource: corev1.SchemeGroupVersion.WithResource("nodes"), Name: "n1",
		Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}},
	}
	if err := v.Validate(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if srv.calls() != 1 {
		t.Error("a cluster-scoped object was filtered by a namespaceSelector")
	}
}

func TestMatchConditions(t *testing.T) {
	allowAll := authz.Func(func(_ context.Context, a authz.Attributes) (authz.Decision, string, error) {
		if a.User != nil && a.User.Name == "alice" && a.Verb == "create" && a.Resource == "pods" {
			return authz.Allow, "", nil
		}
		return authz.NoOpinion, "", nil
	})
	tests := []struct {
		name       string
		conditions []string
		policy     admissionregistrationv1.FailurePolicyType
		wantCalled bool
		wantErr    string
	}{
		{"true", []string{`object.metadata.labels["app"] == "web"`}, admissionregistrationv1.Fail, true, ""},
		{"false", []string{`object.metadata.labels["app"] == "db"`}, admissionregistrationv1.Fail, false, ""},
		{"request and oldObject", []string{`request.userInfo.username == "alice" && request.operation == "CREATE" && oldObject == null && request.kind.kind == "Pod"`}, admissionregistrationv1.Fail, true, ""},
		{"any false skips", []string{`true`, `false`}, admissionregistrationv1.Fail, false, ""},
		{"false wins over error", []string{`object.metadata.labels["missing"] == "x"`, `false`}, admissionregistrationv1.Fail, false, ""},
		{"error with Fail", []string{`object.metadata.labels["missing"] == "x"`}, admissionregistrationv1.Fail, false, "forbidden"},
		{"error with Ignore", []string{`object.metadata.labels["missing"] == "x"`}, admissionregistrationv1.Ignore, false, ""},
		{"compile error with Fail", []string{`object.nope(`}, admissionregistrationv1.Fail, false, "compilation failed"},
		{"authorizer", []string{`authorizer.group("").resource("pods").namespace("default").check("create").allowed()`}, admissionregistrationv1.Fail, true, ""},
		{"authorizer denies", []string{`authorizer.group("").resource("secrets").check("get").allowed()`}, admissionregistrationv1.Fail, false, ""},
		{"authorizer.requestResource", []string{`authorizer.requestResource.check("create").allowed()`}, admissionregistrationv1.Fail, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWebhookServer(t, allow)
			h := validatingFor("cel.example.com", srv)
			h.FailurePolicy = ptr(tc.policy)
			for i, expr := range tc.conditions {
				h.MatchConditions = append(h.MatchConditions, admissionregistrationv1.MatchCondition{Name: "c" + itoa(int32(i)), Expression: expr})
			}
			v := NewValidating(Deps{Configs: validating(h), Authorizer: allowAll})
			err := v.Validate(context.Background(), podCreate("default", map[string]string{"app": "web"}))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if !apierrors.IsForbidden(err) {
					t.Errorf("err = %#v, want 403 Forbidden", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if called := srv.calls() == 1; called != tc.wantCalled {
				t.Errorf("called = %v, want %v", called, tc.wantCalled)
			}
		})
	}
}

func TestAdmissionConfigurationKindsAreExempt(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := validatingFor("all.example.com", srv)
	h.Rules = []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*/*"}},
	}}
	v := NewValidating(Deps{Configs: validating(h)})
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
		a := &admission.Attributes{
			Operation: admission.Create,
			Kind:      admissionregistrationv1.SchemeGroupVersion.WithKind(kind),
			Resource:  admissionregistrationv1.SchemeGroupVersion.WithResource(strings.ToLower(kind) + "s"),
			Name:      "x",
			Object:    &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "x"}},
		}
		if err := v.Validate(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if srv.calls() != 0 {
		t.Errorf("webhook called %d times for admission configuration objects", srv.calls())
	}
	if err := v.Validate(context.Background(), podCreate("default", nil)); err != nil || srv.calls() != 1 {
		t.Errorf("pods not intercepted by the */* rule: err %v, calls %d", err, srv.calls())
	}
}
