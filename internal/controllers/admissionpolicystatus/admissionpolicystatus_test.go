package admissionpolicystatus

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// withOpenAPI fronts the test server, which serves no OpenAPI, with the
// /openapi/v2 and /v3 documents of Skiff's own OpenAPI service, as the
// cluster's API server serves them; crs are its custom resources.
func withOpenAPI(t *testing.T, s *testserver.Server, crs ...openapi.CustomResource) kubernetes.Interface {
	t.Helper()
	var infos []openapi.ResourceInfo
	for _, r := range apis.All() {
		infos = append(infos, openapi.ResourceInfo{
			Group: r.GVR.Group, Version: r.GVR.Version, Resource: r.GVR.Resource,
			Kind: r.Kind, Namespaced: r.Namespaced, Subresources: r.Subresources,
			CreateOnly: r.CreateOnly, ReadOnly: r.Verbs != nil,
		})
	}
	oapi, err := openapi.New(infos, "v1.37.2")
	if err != nil {
		t.Fatal(err)
	}
	oapi.SetCustomResources(crs)
	mux := http.NewServeMux()
	if err := oapi.Install(mux); err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	return kubernetes.NewForConfigOrDie(&rest.Config{Host: front.URL, QPS: -1})
}

func vap(name, group, resource string, exprs ...string) *admissionregistrationv1.ValidatingAdmissionPolicy {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.MatchConstraints = &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: []string{resource}},
		},
	}}}
	for _, e := range exprs {
		p.Spec.Validations = append(p.Spec.Validations, admissionregistrationv1.Validation{Expression: e})
	}
	return p
}

// checked waits until the policy's current generation is type-checked and
// returns its warnings as "fieldRef: warning". typeChecking says a first
// check is done; server-side apply drops it, as upstream's, once the last
// warning it held goes, so a re-check is known by observedGeneration.
func checked(t *testing.T, s *testserver.Server, name string, first bool) []string {
	t.Helper()
	var p *admissionregistrationv1.ValidatingAdmissionPolicy
	controllertest.WaitFor(t, name+" type-checked", func() bool {
		var err error
		p, err = s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Status.ObservedGeneration == p.Generation && (p.Status.TypeChecking != nil || !first)
	})
	if p.Status.TypeChecking == nil {
		return nil
	}
	var out []string
	for _, w := range p.Status.TypeChecking.ExpressionWarnings {
		out = append(out, w.FieldRef+": "+w.Warning)
	}
	return out
}

// A policy on Deployments gets a warning for the expression naming a field
// Deployments lack, none for the correct one; fixed, its new generation is
// checked again and the warning goes. A custom resource's schema is used
// too.
func TestPolicyStatusTypeChecking(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	widgets := widgetCRD()
	client := withOpenAPI(t, s, openapi.CustomResource{
		GVR:  schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"},
		Kind: "Widget", ListKind: "WidgetList", Namespaced: true,
		Schema: kubeOpenAPI(t, widgets.Spec.Versions[0].Schema.OpenAPIV3Schema),
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	controllertest.Run(t, ctx, factory, New(client, factory, slog.New(slog.DiscardHandler)).Run)
	policies := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies()

	p, err := policies.Create(ctx, vap("replicas", "apps", "deployments", "object.spec.replicas > 0", "object.spec.replicaz > 0"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws := checked(t, s, p.Name, true)
	if len(ws) != 1 || !strings.HasPrefix(ws[0], "spec.validations[1].expression: apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicaz'") {
		t.Fatalf("warnings %q", ws)
	}
	// The status is the controller's, applied as upstream's.
	if got := managers(p.Name, s); !strings.Contains(got, FieldManager+"/status") {
		t.Errorf("managed fields %s", got)
	}

	p, err = policies.Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.Validations[1].Expression = "object.spec.replicas < 100"
	if p, err = policies.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.Generation != 2 {
		t.Fatalf("generation %d after a spec change", p.Generation)
	}
	if ws := checked(t, s, p.Name, false); len(ws) != 0 {
		t.Errorf("warnings after the fix %q", ws)
	}

	if _, err := apiextclient.NewForConfigOrDie(s.Config).ApiextensionsV1().CustomResourceDefinitions().Create(ctx, widgets, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "widgets in discovery", func() bool {
		_, err := s.Client.Discovery().ServerResourcesForGroupVersion("example.com/v1")
		return err == nil
	})
	if _, err := policies.Create(ctx, vap("widgets", "example.com", "widgets", "object.spec.size > 0", "object.spec.sise > 0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ws = checked(t, s, "widgets", true)
	if len(ws) != 1 || !strings.HasPrefix(ws[0], "spec.validations[1].expression: example.com/v1, Kind=Widget: ERROR: <input>:1:12: undefined field 'sise'") {
		t.Fatalf("warnings %q", ws)
	}
}

func managers(name string, s *testserver.Server) string {
	p, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, m := range p.ManagedFields {
		out = append(out, fmt.Sprintf("%s/%s", m.Manager, m.Subresource))
	}
	return strings.Join(out, ",")
}

func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"size": {Type: "integer"}}},
					},
				}},
			}},
		},
	}
}

// kubeOpenAPI is a CRD schema in the form the API server publishes it.
func kubeOpenAPI(t *testing.T, in *apiextensionsv1.JSONSchemaProps) *spec.Schema {
	t.Helper()
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(in, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	return s.Unfold().ToKubeOpenAPI()
}
