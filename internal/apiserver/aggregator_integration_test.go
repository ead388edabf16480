package apiserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// extensionServer is a fake extension API server for group
// ext.example.com/v1: it serves the group version's document and echoes
// the identity headers of any other request. It accepts only clients with
// a certificate from the front-proxy CA, as a real one configured from
// extension-apiserver-authentication does.
func extensionServer(t *testing.T, b *pki.Bundle, ip string) (port int) {
	t.Helper()
	certPEM, keyPEM, err := b.IssueServingCert("ext", []string{"ext.default.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	proxyCAs := x509.NewCertPool()
	proxyCAs.AppendCertsFromPEM(b.FrontProxyCAPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/apis/ext.example.com/v1" {
			_ = json.NewEncoder(w).Encode(metav1.APIResourceList{
				TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
				GroupVersion: "ext.example.com/v1",
				APIResources: []metav1.APIResource{{Name: "gadgets", Kind: "Gadget", Namespaced: true, Verbs: metav1.Verbs{"get", "list"}}},
			})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"apiVersion": "ext.example.com/v1", "kind": "Gadget",
			"path": r.URL.Path, "user": r.Header.Get("X-Remote-User"), "groups": r.Header.Values("X-Remote-Group"),
			"authorization": r.Header.Get("Authorization"),
		})
	}))
	// EndpointSlices refuse loopback addresses: listen on the host's own.
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: proxyCAs}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ = strconv.Atoi(p)
	return port
}

// hostIP is a non-loopback IPv4 address of this machine.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to serve an extension API server on")
	return ""
}

func TestAggregatedAPIIsProxiedWithTheCallersIdentity(t *testing.T) {
	bundle, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	users := authn.NewBearerToken(func(token string) (*authn.User, bool) {
		if token != "alice-token" {
			return nil, false
		}
		return &authn.User{Name: "alice", Groups: []string{"devs", "system:authenticated"}}, true
	})
	s := testserver.StartWith(t, testserver.Options{
		Authenticator: users,
		Aggregation: apiserver.AggregationConfig{
			ProxyClient: &bundle.FrontProxyClient, ProxyClientName: pki.FrontProxyClientName,
			RequestHeaderCAPEM: bundle.FrontProxyCAPEM, ClientCAPEM: bundle.CAPEM,
		},
	})
	ctx := context.Background()
	cfg := rest.CopyConfig(s.Config)
	cfg.BearerToken = "alice-token"
	alice := dynamic.NewForConfigOrDie(cfg)

	// The server publishes what extension servers need to trust it.
	cm, err := s.ClientWithToken("alice-token").CoreV1().ConfigMaps("kube-system").Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["requestheader-client-ca-file"] != string(bundle.FrontProxyCAPEM) || cm.Data["requestheader-allowed-names"] != `["front-proxy-client"]` {
		t.Errorf("extension-apiserver-authentication = %v", cm.Data)
	}

	ip := hostIP(t)
	port := extensionServer(t, bundle, ip)
	client := s.ClientWithToken("alice-token")
	if _, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(int32(port))}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "ext-1", Labels: map[string]string{discoveryv1.LabelServiceName: "ext"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port))}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiServices := alice.Resource(apiregistrationv1.SchemeGroupVersion.WithResource("apiservices"))
	svc := map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1.ext.example.com"},
		"spec": map[string]any{
			"group": "ext.example.com", "version": "v1", "groupPriorityMinimum": int64(1000), "versionPriority": int64(15),
			"service":  map[string]any{"namespace": "default", "name": "ext", "port": int64(443)},
			"caBundle": base64.StdEncoding.EncodeToString(bundle.CAPEM),
		},
	}
	if _, err := apiServices.Create(ctx, &unstructured.Unstructured{Object: svc}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var echo map[string]any
	testserver.Eventually(t, "the aggregated API to answer", func() bool {
		body, err := alice.Resource(schema.GroupVersionResource{Group: "ext.example.com", Version: "v1", Resource: "gadgets"}).
			Namespace("default").Get(ctx, "g1", metav1.GetOptions{})
		if err != nil {
			return false
		}
		echo = body.Object
		return true
	})
	if echo["user"] != "alice" || echo["authorization"] != "" || echo["path"] != "/apis/ext.example.com/v1/namespaces/default/gadgets/g1" {
		t.Errorf("extension server saw %v; want user alice, no Authorization header, the request's path", echo)
	}
	if groups, _ := echo["groups"].([]any); len(groups) != 2 || groups[0] != "devs" {
		t.Errorf("groups = %v, want [devs system:authenticated]", echo["groups"])
	}
	waitAvailable := func(status, reason string) {
		t.Helper()
		testserver.Eventually(t, "Available="+status+" ("+reason+")", func() bool {
			got, err := apiServices.Get(ctx, "v1.ext.example.com", metav1.GetOptions{})
			if err != nil {
				return false
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				c := c.(map[string]any)
				if c["type"] == "Available" {
					return c["status"] == status && c["reason"] == reason
				}
			}
			return false
		})
	}
	waitAvailable("True", "Passed")

	// Discovery lists the extension server's group and resources, in the
	// aggregated form client-go reads and in the legacy documents.
	disco := discovery.NewDiscoveryClientForConfigOrDie(cfg)
	testserver.Eventually(t, "gadgets in aggregated discovery", func() bool {
		_, lists, err := disco.ServerGroupsAndResources()
		if err != nil {
			return false
		}
		for _, l := range lists {
			if l.GroupVersion == "ext.example.com/v1" && len(l.APIResources) == 1 && l.APIResources[0].Name == "gadgets" {
				return true
			}
		}
		return false
	})
	group := &metav1.APIGroup{}
	if err := disco.RESTClient().Get().AbsPath("/apis/ext.example.com").Do(ctx).Into(group); err != nil {
		t.Fatal(err)
	}
	if group.PreferredVersion.GroupVersion != "ext.example.com/v1" {
		t.Errorf("/apis/ext.example.com preferred version = %q", group.PreferredVersion.GroupVersion)
	}

	// Without endpoints the API is unavailable, with upstream's reason.
	if err := client.DiscoveryV1().EndpointSlices("default").Delete(ctx, "ext-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAvailable("False", "MissingEndpoints")

	// Built-in group versions are registered as local APIServices.
	local, err := apiServices.Get(ctx, "v1.apps", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if spec, _ := local.Object["spec"].(map[string]any); spec["service"] != nil || spec["group"] != "apps" {
		t.Errorf("v1.apps spec = %v, want local (no service)", spec)
	}
}
