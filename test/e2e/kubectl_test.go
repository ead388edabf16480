package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

const manifest = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: shop
data:
  password: aHVudGVyMg==
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.35
        command: ["httpd", "-f", "-p", "8080"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: shop
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: busybox:1.35
        command: ["true"]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: deployer
  namespace: shop
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: deployer
  namespace: shop
rules:
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer
  namespace: shop
subjects:
- kind: ServiceAccount
  name: deployer
  namespace: shop
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: deployer
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: shop-reader
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
`

// TestKubectl runs the kubectl suite with each supported kubectl against
// a server with embedded etcd.
func TestKubectl(t *testing.T) {
	for version := range kubectlVersions {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, t.TempDir())
			kubectlSuite(t, kubectl{t: t, bin: kubectlBin(t, version), kubeconfig: s.kubeconfig})
		})
	}
}

// TestExternalEtcd runs the same suite against a server on a real,
// separately running etcd.
func TestExternalEtcd(t *testing.T) {
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (hack/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	client := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(etcdBin, "--data-dir", filepath.Join(dir, "etcd"), "--name", "e2e",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e="+peer)
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+goarch())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := startServer(t, filepath.Join(dir, "server"), "--etcd-servers", client)
	kubectlSuite(t, kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig})
}

func goarch() string {
	out, _ := exec.Command("go", "env", "GOARCH").Output()
	return strings.TrimSpace(string(out))
}

// TestUnauthenticatedIsRefused: TLS without credentials is system:anonymous,
// which may not list namespaces (403, as upstream).
func TestUnauthenticatedIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.TLSClientConfig.CAData)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(cfg.Host + "/api/v1/namespaces")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"reason":"Forbidden"`) ||
		!strings.Contains(string(body), `system:anonymous`) {
		t.Fatalf("anonymous request: %d %s", resp.StatusCode, body)
	}
	// Plain HTTP gets Go's TLS-port refusal, never the API.
	if resp, err := http.Get(strings.Replace(cfg.Host, "https://", "http://", 1) + "/api"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "APIVersions") {
			t.Fatalf("plain HTTP: %d %s", resp.StatusCode, body)
		}
	}
}

func kubectlSuite(t *testing.T, k kubectl) {
	t.Run("apply", func(t *testing.T) {
		k.t = t
		out := k.mustStdin(manifest, "apply", "-f", "-")
		contains(t, out, "namespace/shop created", "deployment.apps/web created", "service/web created",
			"job.batch/migrate created", "rolebinding.rbac.authorization.k8s.io/deployer created")
		out = k.mustStdin(manifest, "apply", "-f", "-")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasSuffix(line, " unchanged") {
				t.Errorf("re-apply changed something: %q", line)
			}
		}
	})
	t.Run("get", func(t *testing.T) {
		k.t = t
		contains(t, k.must("get", "deploy", "-n", "shop"), "NAME", "READY", "UP-TO-DATE", "web")
		contains(t, k.must("get", "deploy", "-n", "shop", "-o", "wide"), "CONTAINERS", "IMAGES", "SELECTOR", "busybox:1.35", "app=web")
		contains(t, k.must("get", "deploy", "web", "-n", "shop", "-o", "yaml"), "kind: Deployment", "replicas: 2", "uid:", "resourceVersion:")
		var d struct {
			Metadata struct {
				Generation int `json:"generation"`
			} `json:"metadata"`
			Spec struct {
				RevisionHistoryLimit int `json:"revisionHistoryLimit"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(k.must("get", "deploy", "web", "-n", "shop", "-o", "json")), &d); err != nil {
			t.Fatal(err)
		}
		if d.Metadata.Generation != 1 || d.Spec.RevisionHistoryLimit != 10 {
			t.Fatalf("generation=%d revisionHistoryLimit=%d, want 1 and 10 (defaulted)", d.Metadata.Generation, d.Spec.RevisionHistoryLimit)
		}
		contains(t, k.must("get", "cm,secret,svc,job,sa", "-n", "shop", "-o", "name"), "configmap/settings", "secret/creds", "service/web", "job.batch/migrate", "serviceaccount/deployer")
		if got := k.must("get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.data.color}"); got != "blue" {
			t.Fatalf("jsonpath = %q", got)
		}
		contains(t, k.must("get", "ns"), "shop", "Active")
		contains(t, k.must("get", "clusterrole", "shop-reader"), "shop-reader")
		contains(t, k.must("get", "all", "-n", "shop"), "deployment.apps/web", "service/web")
		// Paginated: kubectl follows the continue tokens.
		paged := k.must("get", "sa,role,rolebinding", "-n", "shop", "--chunk-size=1", "-o", "name")
		contains(t, paged, "serviceaccount/deployer", "role.rbac.authorization.k8s.io/deployer", "rolebinding.rbac.authorization.k8s.io/deployer")
		contains(t, k.must("get", "rolebinding", "deployer", "-n", "shop", "-o", "wide"), "Role/deployer", "shop/deployer")
		contains(t, k.must("get", "svc", "web", "-n", "shop"), "ClusterIP", "80/TCP")
		_, serviceRange, _ := net.ParseCIDR("10.96.0.0/12")
		if ip := net.ParseIP(k.must("get", "svc", "web", "-n", "shop", "-o", "jsonpath={.spec.clusterIP}")); !serviceRange.Contains(ip) {
			t.Fatalf("service cluster IP %v not in the default range %v", ip, serviceRange)
		}
	})
	t.Run("describe", func(t *testing.T) {
		k.t = t
		contains(t, k.must("describe", "deploy", "web", "-n", "shop"), "Name:", "web", "Replicas:", "Selector:")
		contains(t, k.must("describe", "cm", "settings", "-n", "shop"), "color")
	})
	t.Run("watch", func(t *testing.T) {
		k.t = t
		cmd := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "get", "cm", "-n", "shop", "-w", "-o", "name")
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		time.Sleep(time.Second)
		k.must("create", "configmap", "watched", "-n", "shop", "--from-literal=a=b")
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), "configmap/watched") {
			if time.Now().After(deadline) {
				t.Fatalf("kubectl get -w did not see the new configmap; saw:\n%s", out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("patch", func(t *testing.T) {
		k.t = t
		k.must("patch", "cm", "settings", "-n", "shop", "--type=merge", "-p", `{"data":{"size":"xl"}}`)
		k.must("patch", "cm", "settings", "-n", "shop", "--type=json", "-p", `[{"op":"replace","path":"/data/color","value":"red"}]`)
		k.must("patch", "deploy", "web", "-n", "shop", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.36"}]}}}}`)
		data := k.must("get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.data.color}/{.data.size}")
		if data != "red/xl" {
			t.Fatalf("configmap data after patches = %q", data)
		}
		img := k.must("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].command[0]} {.metadata.generation}")
		if img != "busybox:1.36 httpd 2" {
			t.Fatalf("after strategic merge patch: %q, want image, kept command and generation 2", img)
		}
		if _, err := k.run("", "patch", "cm", "settings", "-n", "shop", "--type=json", "-p", `[{"op":"test","path":"/data/color","value":"green"}]`); err == nil {
			t.Fatal("failing json-patch test op succeeded")
		}
	})
	t.Run("scale", func(t *testing.T) {
		k.t = t
		k.must("scale", "deploy", "web", "-n", "shop", "--replicas=5")
		if got := k.must("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}"); got != "5" {
			t.Fatalf("replicas = %s", got)
		}
	})
	t.Run("label-annotate", func(t *testing.T) {
		k.t = t
		k.must("label", "cm", "settings", "-n", "shop", "tier=gold")
		k.must("annotate", "cm", "settings", "-n", "shop", "owner=ops")
		contains(t, k.must("get", "cm", "-n", "shop", "-l", "tier=gold", "-o", "name"), "configmap/settings")
		if out := k.must("get", "cm", "-n", "shop", "-l", "tier in (silver)", "-o", "name"); strings.TrimSpace(out) != "" {
			t.Fatalf("set-based selector matched: %q", out)
		}
		if got := k.must("get", "cm", "settings", "-n", "shop", "-o", "jsonpath={.metadata.annotations.owner}"); got != "ops" {
			t.Fatalf("annotation = %q", got)
		}
	})
	t.Run("discovery", func(t *testing.T) {
		k.t = t
		contains(t, k.must("api-resources"), "deployments", "deploy", "apps/v1", "true", "Deployment", "clusterroles")
		contains(t, k.must("api-versions"), "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "v1")
		contains(t, k.must("get", "--raw", "/apis/apps/v1"), `"kind":"APIResourceList"`, `"name":"deployments/scale"`)
		contains(t, k.must("explain", "deployment.spec.replicas"), "replicas")
	})
	t.Run("errors", func(t *testing.T) {
		k.t = t
		out, err := k.run("", "get", "cm", "nope", "-n", "shop")
		if err == nil || !strings.Contains(out, `configmaps "nope" not found`) {
			t.Fatalf("get missing: %v %s", err, out)
		}
		out, err = k.run(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name","namespace":"shop"}}`, "create", "-f", "-")
		if err == nil || !strings.Contains(out, "Invalid value") {
			t.Fatalf("invalid name accepted: %v %s", err, out)
		}
		out, err = k.run(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict","namespace":"shop"},"bogus":1}`, "create", "--validate=strict", "-f", "-")
		if err == nil || !strings.Contains(out, "bogus") {
			t.Fatalf("unknown field accepted under strict validation: %v %s", err, out)
		}
		if _, err := k.run("", "get", "cm", "strict", "-n", "shop"); err == nil {
			t.Fatal("refused object was stored")
		}
	})
	t.Run("delete", func(t *testing.T) {
		k.t = t
		k.must("delete", "cm", "settings", "-n", "shop")
		k.must("delete", "job", "migrate", "-n", "shop", "--cascade=foreground")
		k.must("delete", "deploy", "web", "-n", "shop", "--cascade=orphan")
		k.must("delete", "secret", "creds", "-n", "shop", "--cascade=background")
		out := k.must("get", "cm,job,deploy,secret", "-n", "shop", "-o", "name")
		for _, gone := range []string{"configmap/settings", "job.batch/migrate", "deployment.apps/web", "secret/creds"} {
			if strings.Contains(out, gone) {
				t.Fatalf("%s still exists:\n%s", gone, out)
			}
		}
		k.must("create", "cm", "extra1", "-n", "shop")
		k.must("create", "cm", "extra2", "-n", "shop")
		contains(t, k.must("delete", "cm", "--all", "-n", "shop"), "extra1", "extra2")
		k.must("delete", "ns", "shop")
		if _, err := k.run("", "get", "svc", "web", "-n", "shop"); err == nil {
			t.Fatal("service survived its namespace")
		}
	})
}

// TestRestartKeepsState restarts the server on the same data dir.
func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig}
	k.mustStdin(manifest, "apply", "-f", "-")
	// The controllers update the Deployment's status for a moment after
	// the apply; compare once they are done with it.
	const uidRV = "jsonpath={.metadata.uid}/{.metadata.resourceVersion}/{.status.observedGeneration}/{.metadata.generation}"
	var before string
	waitFor(t, func() bool {
		prev := before
		before = k.must("get", "deploy", "web", "-n", "shop", "-o", uidRV)
		parts := strings.Split(before, "/")
		if len(parts) != 4 || parts[2] != parts[3] || before != prev {
			return false
		}
		time.Sleep(time.Second)
		return k.must("get", "deploy", "web", "-n", "shop", "-o", uidRV) == before
	}, "the Deployment's status to settle")
	s.stop()
	s.start()
	after := k.must("get", "deploy", "web", "-n", "shop", "-o", uidRV)
	if before != after {
		t.Fatalf("deployment changed across restart: %s -> %s", before, after)
	}
	out := k.mustStdin(manifest, "apply", "-f", "-")
	if strings.Contains(out, "created") || strings.Contains(out, "configured") {
		t.Fatalf("apply after restart changed objects:\n%s", out)
	}
}
