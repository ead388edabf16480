package e2e

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// authNS is the namespace TestAuthIdentityAndAccess works in; reader is
// its ServiceAccount, with no permissions until a RoleBinding gives some.
const (
	authNS   = "auth-e2e"
	readerSA = "system:serviceaccount:" + authNS + ":reader"
)

// TestAuthIdentityAndAccess proves issue 13 on one `skiff up` node with
// real kubectl and real pods: pods get a ServiceAccount identity that
// client-go's rest.InClusterConfig uses; RBAC decides what it may do, and
// kubectl auth can-i/whoami, create token and --as answer as upstream;
// the holes of the issue (a bootstrap token or node credential acting as
// admin, a self-approved system:masters CSR, anonymous reads, etcd on
// loopback) are closed with upstream's 403.
func TestAuthIdentityAndAccess(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e8", "--cluster-cidr", "10.68.0.0/16",
		"--dns-port", strconv.Itoa(freePort(t)),
		"--ingress-http-port", strconv.Itoa(freePort(t)), "--ingress-https-port", strconv.Itoa(freePort(t)))
	admin := readAdmin(t, c.kubeconfig)
	k := c.kubectl()
	// nk is the admin in authNS, so the suite's pod helpers work there.
	nk := kubectl{t: t, bin: k.bin, kubeconfig: derivedKubeconfig(t, c.kubeconfig, authNS, false)}
	// tokenKubeconfig has the cluster's address and CA but no credentials:
	// kubectl --token against it authenticates with the token alone.
	tokenKubeconfig := derivedKubeconfig(t, c.kubeconfig, authNS, true)

	k.must("create", "namespace", authNS)
	k.must("create", "serviceaccount", "reader", "-n", authNS)
	k.must("create", "secret", "generic", "app-secret", "-n", authNS, "--from-literal=password=hunter2")
	k.must("create", "secret", "generic", "elsewhere-secret", "-n", authNS, "--from-literal=password=hunter3")
	waitFor(t, func() bool { _, err := nk.run("", "get", "serviceaccount", "default"); return err == nil },
		"the default ServiceAccount in a new namespace")
	applyYAML(nk, `
apiVersion: v1
kind: Pod
metadata: {name: identity}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: app-secret, key: password}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: skiff.test/inclusterclient:latest
    imagePullPolicy: Never
---
apiVersion: v1
kind: Pod
metadata: {name: no-token}
spec:
  serviceAccountName: reader
  automountServiceAccountToken: false
  nodeSelector: {auth-e2e/no-such-node: "true"}
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere}
spec:
  nodeSelector: {auth-e2e/no-such-node: "true"}
  containers: [{name: c, image: busybox}]
  volumes: [{name: s, secret: {secretName: elsewhere-secret}}]
`)

	// The steps share the cluster and run in order: RBAC builds on the
	// pods, the token request on the RoleBinding.
	step := func(name string, fn func(*testing.T, kubectl)) {
		t.Run(name, func(t *testing.T) {
			nk := nk
			nk.t = t
			fn(t, nk)
		})
	}
	step("pod identity", func(t *testing.T, k kubectl) { testPodIdentity(t, k, admin, c) })
	step("in-cluster client and RBAC", func(t *testing.T, k kubectl) { testInClusterRBAC(t, k, tokenKubeconfig) })
	step("token request", func(t *testing.T, k kubectl) { testTokenRequest(t, k, admin, tokenKubeconfig) })
	step("whoami", func(t *testing.T, k kubectl) { testWhoami(t, k, admin, tokenKubeconfig) })
	step("bootstrap token is no admin", func(t *testing.T, k kubectl) { testBootstrapTokenLimits(t, k, c, tokenKubeconfig) })
	step("node credential is no admin", func(t *testing.T, k kubectl) { testNodeCredentialLimits(t, k, c) })
	step("anonymous", func(t *testing.T, _ kubectl) { testAnonymous(t, admin.server) })
	step("etcd is private", func(t *testing.T, _ kubectl) { testEtcdPrivate(t, c) })
}

// testNodeCredentialLimits: the node's own kubeconfig reads the Secret of
// its pod, and nothing an admin could: no namespace deletion, no Secret of
// a pod not bound to it, no listing of Secrets.
func testNodeCredentialLimits(t *testing.T, k kubectl, c *nodeCluster) {
	nodeK := kubectl{t: t, bin: k.bin, kubeconfig: filepath.Join(c.dataDir, "agent", "kubelet.kubeconfig")}
	user := `User "system:node:` + c.node + `"`
	out, err := nodeK.run("", "delete", "namespace", authNS)
	forbidden(t, "node deletes a namespace", out, err, user, `cannot delete resource "namespaces"`)
	if out, err := nodeK.run("", "get", "secret", "app-secret", "-n", authNS, "-o", "jsonpath={.data.password}"); err != nil ||
		out != base64.StdEncoding.EncodeToString([]byte("hunter2")) {
		t.Errorf("node reads the Secret of its own pod: %v %q", err, out)
	}
	out, err = nodeK.run("", "get", "secret", "elsewhere-secret", "-n", authNS)
	forbidden(t, "node reads the Secret of a pod not bound to it", out, err, user,
		`cannot get resource "secrets" in API group "" in the namespace "`+authNS+`"`)
	out, err = nodeK.run("", "get", "secrets", "-A")
	forbidden(t, "node lists every Secret", out, err, user, `cannot list resource "secrets"`)
}

// testPodIdentity: the mounted token, CA and namespace, the projected
// volume admission adds, the kube-root-ca.crt ConfigMap and the kubernetes
// Service's real address.
func testPodIdentity(t *testing.T, k kubectl, admin adminInfo, c *nodeCluster) {
	waitPod(t, k, "identity", 90*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount"
	if out := k.must("exec", "identity", "--", "ls", dir); !slices.Equal(sortedFields(out), []string{"ca.crt", "namespace", "token"}) {
		t.Errorf("%s holds %q, want ca.crt, namespace and token", dir, out)
	}
	if ns := k.must("exec", "identity", "--", "cat", dir+"/namespace"); ns != authNS {
		t.Errorf("namespace file = %q, want %q", ns, authNS)
	}
	claims := jwtClaims(t, k.must("exec", "identity", "--", "cat", dir+"/token"))
	if claims["sub"] != readerSA {
		t.Errorf("mounted token's subject = %v, want %s", claims["sub"], readerSA)
	}
	if _, ok := claims["exp"].(float64); !ok {
		t.Errorf("mounted token has no expiry: %v", claims)
	}
	if bound, _ := claims["kubernetes.io"].(map[string]any); bound == nil || !strings.Contains(jsonString(bound["pod"]), `"name":"identity"`) {
		t.Errorf("mounted token is not bound to its pod: %v", claims)
	}

	rootCA := k.must("get", "configmap", "kube-root-ca.crt", "-o", `jsonpath={.data.ca\.crt}`)
	if !strings.Contains(rootCA, "BEGIN CERTIFICATE") {
		t.Errorf("kube-root-ca.crt in a new namespace: %q", rootCA)
	}
	if ca := k.must("exec", "identity", "--", "cat", dir+"/ca.crt"); strings.TrimSpace(ca) != strings.TrimSpace(rootCA) {
		t.Errorf("mounted ca.crt differs from kube-root-ca.crt:\n%s\nvs\n%s", ca, rootCA)
	}
	if !strings.Contains(rootCA, strings.TrimSpace(string(admin.caPEM))) {
		t.Errorf("kube-root-ca.crt does not hold the CA the admin kubeconfig trusts")
	}

	volumes := k.must("get", "pod", "identity", "-o", `jsonpath={range .spec.volumes[*]}{.name}{" "}{.projected.sources[*].serviceAccountToken.path}{"\n"}{end}`)
	if !strings.Contains(volumes, "kube-api-access-") || !strings.Contains(volumes, " token") {
		t.Errorf("no projected kube-api-access volume with the token: %q", volumes)
	}
	if out := k.must("get", "pod", "no-token", "-o", "jsonpath={.spec.volumes}"); strings.Contains(out, "kube-api-access-") {
		t.Errorf("automountServiceAccountToken: false still got a token volume: %s", out)
	}
	out, err := k.run("", "run", "ghost-sa", "--image=busybox", `--overrides={"spec":{"serviceAccountName":"ghost"}}`, "--", "true")
	forbidden(t, "a pod naming a missing ServiceAccount", out, err, `serviceaccount "ghost" not found`)

	// The kubernetes Service points at the server's advertise address,
	// which for `skiff up` is the node's address, on the secure port.
	nodeIP := k.must("get", "node", c.node, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	eps := k.must("get", "endpoints", "kubernetes", "-n", "default", "-o", `jsonpath={.subsets[*].addresses[*].ip}:{.subsets[*].ports[*].port}`)
	if want := nodeIP + ":" + flagValue(c.args, "--secure-port"); eps != want {
		t.Errorf("kubernetes endpoints = %q, want %q (the advertise address, never 127.0.0.1)", eps, want)
	}
	// busybox's wget completes a TLS handshake with the serving certificate
	// through the Service (it checks no certificates) and reads /version.
	out, err = k.run("", "exec", "identity", "--", "sh", "-c",
		`timeout 10 wget -q -O- "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version"`)
	if err != nil || !strings.Contains(out, `"gitVersion"`) {
		t.Errorf("busybox wget https://kubernetes/version from a pod: %v\n%s", err, out)
	}
}

// testInClusterRBAC: the in-cluster client is refused until a RoleBinding
// allows it, and can-i, create token and --token agree at each step.
func testInClusterRBAC(t *testing.T, k kubectl, tokenKubeconfig string) {
	logs := waitLogs(t, k, "client", 90*time.Second, "a first attempt", func(s string) bool { return strings.TrimSpace(s) != "" })
	if first := strings.SplitN(strings.TrimSpace(logs), "\n", 2)[0]; first != "ERR 403 Forbidden" {
		t.Fatalf("in-cluster client before any binding: first line %q, want %q; logs:\n%s", first, "ERR 403 Forbidden", lastLines(logs, 10))
	}

	token := strings.TrimSpace(k.must("create", "token", "reader"))
	claims := jwtClaims(t, token)
	if claims["sub"] != readerSA {
		t.Errorf("kubectl create token: subject %v, want %s", claims["sub"], readerSA)
	}
	tk := kubectl{t: t, bin: k.bin, kubeconfig: tokenKubeconfig}
	denied := `User "` + readerSA + `" cannot list resource "pods" in API group "" in the namespace "` + authNS + `"`
	out, err := tk.run("", "--token="+token, "get", "pods")
	forbidden(t, "ServiceAccount token lists pods before the binding", out, err, denied)

	for _, v := range []string{"1.27", "1.33"} {
		t.Run("can-i before the binding with kubectl "+v, func(t *testing.T) {
			vk := kubectl{t: t, bin: kubectlBin(t, v), kubeconfig: k.kubeconfig}
			if verbs, ok := canIListVerbs(vk.must("auth", "can-i", "--list", "--as="+readerSA, "-n", authNS), "pods"); ok {
				t.Errorf("reader may %s pods before any binding", verbs)
			}
		})
	}

	k.must("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
	k.must("create", "rolebinding", "reader-reads-pods", "--role=pod-reader", "--serviceaccount="+authNS+":reader")

	logs = waitLogs(t, k, "client", 30*time.Second, "OK after the binding", func(s string) bool { return strings.Contains(s, "\nOK ") })
	if strings.Contains(logs, "ERR 401") {
		t.Errorf("the in-cluster client's token was not accepted at some point:\n%s", lastLines(logs, 20))
	}

	for _, v := range []string{"1.27", "1.33"} {
		t.Run("can-i after the binding with kubectl "+v, func(t *testing.T) {
			vk := kubectl{t: t, bin: kubectlBin(t, v), kubeconfig: k.kubeconfig}
			list := vk.must("auth", "can-i", "--list", "--as="+readerSA, "-n", authNS)
			if verbs, _ := canIListVerbs(list, "pods"); verbs != "[get list]" {
				t.Errorf("can-i --list: pods verbs %q, want [get list]:\n%s", verbs, list)
			}
			if out := vk.must("auth", "can-i", "list", "pods", "--as="+readerSA, "-n", authNS); strings.TrimSpace(out) != "yes" {
				t.Errorf("can-i list pods = %q, want yes", out)
			}
			out, err := vk.run("", "auth", "can-i", "delete", "namespaces", "--as="+readerSA)
			if first := strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]; first != "no" || exitCode(err) != 1 {
				t.Errorf("can-i delete namespaces: %q, exit %d; want no, exit 1", out, exitCode(err))
			}
		})
	}

	if out, err := tk.run("", "--token="+token, "get", "pods", "-o", "name"); err != nil || !strings.Contains(out, "pod/client") {
		t.Errorf("ServiceAccount token lists pods after the binding: %v\n%s", err, out)
	}
	out, err = tk.run("", "--token="+token, "get", "secrets")
	forbidden(t, "ServiceAccount token lists secrets", out, err,
		`User "`+readerSA+`" cannot list resource "secrets" in API group "" in the namespace "`+authNS+`"`)
	out, err = tk.run("", "--token="+token, "get", "pods", "--as=jane")
	forbidden(t, "ServiceAccount impersonates a user", out, err, `cannot impersonate resource "users"`)
}

// testTokenRequest: TokenRequest as upstream: the default issuer, the
// discovery documents whose keys verify the token, the duration bounds,
// and a token bound to a pod that stops working once the pod is gone.
func testTokenRequest(t *testing.T, k kubectl, admin adminInfo, tokenKubeconfig string) {
	token := strings.TrimSpace(k.must("create", "token", "reader", "--duration=2h"))
	claims := jwtClaims(t, token)
	if claims["iss"] != "https://kubernetes.default.svc" {
		t.Errorf("issuer %v, want https://kubernetes.default.svc", claims["iss"])
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if d := exp - iat; d < 7200-5 || d > 7200+5 {
		t.Errorf("token for --duration=2h lives %vs", d)
	}
	code, body := rawGet(t, admin.server, "/.well-known/openid-configuration", token)
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.Issuer != claims["iss"] || !strings.HasSuffix(doc.JWKSURI, "/openid/v1/jwks") {
		t.Errorf("/.well-known/openid-configuration: %d %s", code, body)
	}
	code, body = rawGet(t, admin.server, "/openid/v1/jwks", token)
	if code != http.StatusOK {
		t.Errorf("/openid/v1/jwks: %d %s", code, body)
	} else if err := verifyJWT(token, []byte(body)); err != nil {
		t.Errorf("the token does not verify with the served keys: %v\n%s", err, body)
	}
	out, err := k.run("", "create", "token", "reader", "--duration=5m")
	if err == nil || !strings.Contains(out, "may not specify a duration less than 10 minutes") {
		t.Errorf("a 5-minute token: %v\n%s", err, out)
	}

	bound := strings.TrimSpace(k.must("create", "token", "reader", "--bound-object-kind=Pod", "--bound-object-name=no-token"))
	if pod := jsonString(jwtClaims(t, bound)["kubernetes.io"]); !strings.Contains(pod, `"name":"no-token"`) {
		t.Errorf("pod-bound token claims %s, want the pod no-token", pod)
	}
	tk := kubectl{t: t, bin: k.bin, kubeconfig: tokenKubeconfig}
	if out, err := tk.run("", "--token="+bound, "get", "pods", "-o", "name"); err != nil {
		t.Errorf("pod-bound token while its pod exists: %v\n%s", err, out)
	}
	k.must("delete", "pod", "no-token", "--wait=true")
	waitFor(t, func() bool {
		out, err := tk.run("", "--token="+bound, "get", "pods")
		return err != nil && strings.Contains(out, "Unauthorized")
	}, "the pod-bound token refused (401) once its pod is gone")
}

// canIListVerbs finds resource's row in `kubectl auth can-i --list`
// output and returns its verbs column.
func canIListVerbs(out, resource string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == resource {
			return strings.Join(f[3:], " "), true
		}
	}
	return "", false
}

// testWhoami: SelfSubjectReview through kubectl 1.33 (1.27 only has it
// as alpha) for the admin, an impersonated user and a ServiceAccount.
func testWhoami(t *testing.T, k kubectl, admin adminInfo, tokenKubeconfig string) {
	k.bin = kubectlBin(t, "1.33")
	out := k.must("auth", "whoami")
	if user, groups := whoami(out); user != admin.user || !strings.Contains(groups, "system:masters") {
		t.Errorf("whoami as admin: user %q groups %q, want %s in system:masters:\n%s", user, groups, admin.user, out)
	}
	out = k.must("auth", "whoami", "--as=jane", "--as-group=devs")
	if user, groups := whoami(out); user != "jane" || !strings.Contains(groups, "devs") || strings.Contains(groups, "system:masters") {
		t.Errorf("whoami --as=jane --as-group=devs: user %q groups %q:\n%s", user, groups, out)
	}
	token := strings.TrimSpace(k.must("create", "token", "reader"))
	tk := kubectl{t: t, bin: k.bin, kubeconfig: tokenKubeconfig}
	out, err := tk.run("", "--token="+token, "auth", "whoami")
	if user, groups := whoami(out); err != nil || user != readerSA || !strings.Contains(groups, "system:serviceaccounts:"+authNS) {
		t.Errorf("whoami with a ServiceAccount token: %v user %q groups %q:\n%s", err, user, groups, out)
	}
}

// whoami reads the Username and Groups rows of `kubectl auth whoami`.
func whoami(out string) (user, groups string) {
	for _, line := range strings.Split(out, "\n") {
		name, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch name {
		case "Username":
			user = strings.TrimSpace(value)
		case "Groups":
			groups = strings.TrimSpace(value)
		}
	}
	return user, groups
}

// testBootstrapTokenLimits: a join token may only join. It reads no
// Secret, deletes no namespace, and its system:masters CSR stays pending
// (it cannot approve it); approved by the admin, the certificate's life is
// capped at a year.
func testBootstrapTokenLimits(t *testing.T, k kubectl, c *nodeCluster, tokenKubeconfig string) {
	token, _, _ := joinToken(t, c.dataDir)
	user := `User "system:bootstrap:` + token[:6] + `"`
	tk := kubectl{t: t, bin: k.bin, kubeconfig: tokenKubeconfig}
	run := func(stdin string, args ...string) (string, error) {
		return tk.run(stdin, append([]string{"--token=" + token}, args...)...)
	}
	out, err := run("", "get", "secrets", "-A")
	forbidden(t, "bootstrap token lists Secrets", out, err, user, `cannot list resource "secrets" in API group "" at the cluster scope`)
	out, err = run("", "delete", "namespace", authNS)
	forbidden(t, "bootstrap token deletes a namespace", out, err, user, `cannot delete resource "namespaces"`)
	if _, err := k.run("", "get", "namespace", authNS); err != nil {
		t.Errorf("namespace gone after a refused delete: %v", err)
	}

	csr := func(name string, orgs ...string) string {
		return `apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: ` + name + `}
spec:
  signerName: kubernetes.io/kube-apiserver-client
  expirationSeconds: 2147483647
  usages: [client auth]
  request: ` + base64.StdEncoding.EncodeToString(csrPEM(t, "mallory", orgs...)) + "\n"
	}
	// A request for system:masters through the client signer is refused
	// outright (upstream's CertificateSubjectRestriction).
	out, err = run(csr("masters", "system:masters"), "create", "-f", "-")
	forbidden(t, "bootstrap token asks for a system:masters certificate", out, err,
		"use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed")
	// Any other client certificate may be asked for, but only someone
	// allowed to approve for the signer can approve it.
	if out, err := run(csr("escalate", "developers"), "create", "-f", "-"); err != nil {
		t.Fatalf("bootstrap token creates a CSR (upstream allows it): %v\n%s", err, out)
	}
	out, err = run("", "certificate", "approve", "escalate")
	forbidden(t, "bootstrap token approves its own CSR", out, err, user, `"certificatesigningrequests/approval"`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got := k.must("get", "csr", "escalate", "-o", `jsonpath={.status.conditions[*].type}/{.status.certificate}`)
		if got != "/" {
			t.Fatalf("CSR of a bootstrap token was decided without the admin: conditions/certificate %q", got)
		}
	}

	k.must("certificate", "approve", "escalate")
	var issued string
	waitFor(t, func() bool {
		issued = k.must("get", "csr", "escalate", "-o", "jsonpath={.status.certificate}")
		return issued != ""
	}, "the approved CSR's certificate")
	der, err := base64.StdEncoding.DecodeString(issued)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(der)
	if blk == nil {
		t.Fatalf("issued certificate is not PEM: %q", der)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if max := time.Now().Add(366 * 24 * time.Hour); cert.NotAfter.After(max) {
		t.Errorf("certificate for expirationSeconds 2147483647 valid until %s, want capped at a year", cert.NotAfter)
	}
}

// testAnonymous: without credentials only what upstream serves anonymously
// answers; bad credentials are 401, not anonymous.
func testAnonymous(t *testing.T, server string) {
	for _, path := range []string{"/version", "/healthz", "/livez", "/readyz", "/api/v1/namespaces/kube-public/configmaps/cluster-info"} {
		if code, body := rawGet(t, server, path, ""); code != http.StatusOK {
			t.Errorf("anonymous GET %s: %d %s, want 200", path, code, body)
		}
	}
	code, body := rawGet(t, server, "/api/v1/namespaces", "")
	if code != http.StatusForbidden || !strings.Contains(body, `"reason":"Forbidden"`) ||
		!strings.Contains(body, `User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope`) {
		t.Errorf("anonymous GET /api/v1/namespaces: %d %s, want 403 for system:anonymous", code, body)
	}
	code, body = rawGet(t, server, "/api/v1/namespaces/kube-system/secrets", "")
	if code != http.StatusForbidden {
		t.Errorf("anonymous GET kube-system secrets: %d %s, want 403", code, body)
	}
	code, body = rawGet(t, server, "/api/v1/namespaces", "abcdef.0123456789abcdef")
	if code != http.StatusUnauthorized || !strings.Contains(body, `"reason":"Unauthorized"`) {
		t.Errorf("GET with an unknown token: %d %s, want 401", code, body)
	}
}

// testEtcdPrivate: the skiff process listens only on the API server's and
// the node's ports, none of them answers as etcd without a client
// certificate, and any unix socket under the server's data dir is 0600.
func testEtcdPrivate(t *testing.T, c *nodeCluster) {
	allowed := map[int]string{}
	for _, f := range []string{"--secure-port", "--kubelet-port", "--dns-port", "--ingress-http-port", "--ingress-https-port"} {
		p, err := strconv.Atoi(flagValue(c.args, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		allowed[p] = f
	}
	listeners, err := processListeners(c.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("listeners of skiff: %v", err)
	}
	if len(listeners) == 0 {
		t.Fatal("found no listening sockets of skiff (not even the API server's)")
	}
	for _, l := range listeners {
		if speaksEtcd(l.addr) {
			t.Errorf("%s answers etcd's /version without a client certificate", l.addr)
		}
		if _, ok := allowed[l.port]; !ok {
			t.Errorf("skiff listens on %s, which is none of the API server's or node's ports %v", l.addr, allowed)
		}
	}
	serverDir := filepath.Join(c.dataDir, "server")
	if raw, err := os.ReadFile(filepath.Join(serverDir, "etcd", "client-url")); err == nil && strings.HasPrefix(string(raw), "http://") {
		t.Errorf("embedded etcd records a plain-HTTP client URL: %s", raw)
	}
	_ = filepath.WalkDir(serverDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSocket == 0 {
			return nil
		}
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("unix socket %s has mode %v, want 0600", path, info.Mode().Perm())
		}
		return nil
	})
}

func sortedFields(s string) []string {
	f := strings.Fields(s)
	slices.Sort(f)
	return f
}
