package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIngressRoutesByHostAndPath serves Ingresses from the node: routing
// by host and path (Prefix and Exact) to Service endpoints, TLS from a
// Secret, and the Ingress status.
func TestIngressRoutesByHostAndPath(t *testing.T) {
	httpPort, httpsPort := freePort(t), freePort(t)
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e6", "--cluster-cidr", "10.73.0.0/16", "--dns-port", strconv.Itoa(freePort(t)),
		"--ingress-http-port", strconv.Itoa(httpPort), "--ingress-https-port", strconv.Itoa(httpsPort))
	k := c.kubectl()
	certFile, keyFile := selfSigned(t, "shop.test")
	k.must("create", "secret", "tls", "shop-tls", "--cert", certFile, "--key", keyFile)
	applyYAML(k, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: [sh, -c, 'mkdir -p /w/api && echo api > /w/api/index.html && exec httpd -f -p 8080 -h /w']}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 1
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox, command: [sh, -c, 'echo hello > /tmp/hello && exec httpd -f -p 8080 -h /tmp']}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec: {selector: {app: hello}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  tls: [{hosts: [shop.test], secretName: shop-tls}]
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
      - {path: /hello, pathType: Exact, backend: {service: {name: hello, port: {number: 80}}}}
`)
	k.must("rollout", "status", "deployment/api", "--timeout=60s")
	k.must("rollout", "status", "deployment/hello", "--timeout=60s")
	if got := k.must("get", "ingressclass", "-o", "jsonpath={.items[0].metadata.name}"); got != "skiff" {
		t.Errorf("ingress classes: %q", got)
	}
	nodeIP := k.must("get", "node", c.node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "shop.test"}}}
	get := func(scheme string, port int, host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+nodeIP+":"+strconv.Itoa(port)+path, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get("http", httpPort, "shop.test", "/api/")
		if code == 200 && body == "api" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingress never routed shop.test/api/: %d %q", code, body)
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, tc := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"shop.test", "/hello", 200, "hello"},
		{"shop.test", "/hello/more", 404, ""},
		{"shop.test", "/apiary", 404, ""},
		{"other.test", "/api/", 404, ""},
	} {
		code, body := get("http", httpPort, tc.host, tc.path)
		if code != tc.code || (tc.body != "" && body != tc.body) {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, code, body, tc.code, tc.body)
		}
	}
	if code, body := get("https", httpsPort, "shop.test", "/api/"); code != 200 || body != "api" {
		t.Errorf("HTTPS: %d %q", code, body)
	}
	conn, err := tls.Dial("tcp", nodeIP+":"+strconv.Itoa(httpsPort), &tls.Config{InsecureSkipVerify: true, ServerName: "shop.test"})
	if err != nil {
		t.Fatal(err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "shop.test" {
		t.Errorf("served certificate for %q, want the Secret's shop.test", cn)
	}
	conn.Close()
	deadline = time.Now().Add(30 * time.Second)
	for k.must("get", "ingress", "shop", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}") != nodeIP {
		if time.Now().After(deadline) {
			t.Fatal("ingress status never got the node address")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
