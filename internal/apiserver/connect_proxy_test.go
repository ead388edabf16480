package apiserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/testserver"
)

func backendPort(t *testing.T, srv *httptest.Server) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return int32(n)
}

// TestServiceAndPodProxyForms follows the conformance spec "Proxy should
// proxy through a service and a pod": upstream accepts "name",
// "name:port" and "scheme:name:port" IDs, resolves service ports by name
// or number, proxies HTTPS without verifying the pod's certificate and
// rewrites links of HTML answers to go through the proxy.
func TestServiceAndPodProxyForms(t *testing.T) {
	defer apiserver.DialWorkloadsOnLoopback()()
	ctx := context.Background()
	const ns = "proxy"
	c := testserver.Start(t).ClientWithToken("admin")

	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		fmt.Fprint(w, `<a href="/rewriteme">test</a>`)
	}))
	defer html.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "foo"+r.URL.Path)
	}))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "tls baz") }))
	defer tls.Close()
	htmlPort, plainPort, tlsPort := backendPort(t, html), backendPort(t, plain), backendPort(t, tls)

	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "porter", Image: "agnhost",
		Ports: []corev1.ContainerPort{{ContainerPort: htmlPort}, {Name: "dest1", ContainerPort: plainPort}},
	}}}}
	pod, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.PodIP, pod.Status.PodIPs = "10.244.1.7", []corev1.PodIP{{IP: "10.244.1.7"}}
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{
			{Name: "portname1", Port: 80, TargetPort: intstr.FromString("dest1")},
			{Name: "tlsportname1", Port: 443, TargetPort: intstr.FromInt32(tlsPort)},
		},
	}}
	if _, err := c.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web"}
	eps := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "svc"}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "10.244.1.7", TargetRef: ref}},
		Ports:     []corev1.EndpointPort{{Name: "portname1", Port: plainPort}, {Name: "tlsportname1", Port: tlsPort}},
	}}}
	if _, err := c.CoreV1().Endpoints(ns).Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	svcPath := func(id string) string { return "/api/v1/namespaces/" + ns + "/services/" + id + "/proxy" }
	podPath := func(id string) string { return "/api/v1/namespaces/" + ns + "/pods/" + id + "/proxy" }
	tlsID := "https:web:" + strconv.Itoa(int(tlsPort))
	for path, want := range map[string]string{
		svcPath("svc:portname1") + "/":                           "foo/",
		svcPath("http:svc:portname1") + "/":                      "foo/",
		svcPath("svc:80") + "/some/path/":                        "foo/some/path/",
		svcPath("https:svc:tlsportname1") + "/":                  "tls baz",
		podPath("web") + "/":                                     `<a href="` + podPath("web") + `/rewriteme">test</a>`,
		podPath("http:web:"+strconv.Itoa(int(plainPort))) + "/x": "foo/x",
		podPath(tlsID) + "/":                                     "tls baz",
	} {
		body, err := c.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil || string(body) != want {
			t.Errorf("GET %s = %q, %v; want %q", path, body, err, want)
		}
	}

	for path, check := range map[string]func(error) bool{
		svcPath("svc:nope") + "/":          apierrors.IsServiceUnavailable,
		svcPath("svc:8080") + "/":          apierrors.IsServiceUnavailable,
		svcPath("ftp:svc:portname1") + "/": apierrors.IsBadRequest,
		podPath("a:b:c:d") + "/":           apierrors.IsBadRequest,
		podPath("missing") + "/":           apierrors.IsNotFound,
	} {
		if _, err := c.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx); !check(err) {
			t.Errorf("GET %s: err = %v", path, err)
		}
	}
}
