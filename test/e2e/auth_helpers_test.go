package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// flagValue is the last value given to flag in args ("--flag value"), as
// the flag package would read it.
func flagValue(args []string, flag string) string {
	v := ""
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			v = args[i+1]
		}
	}
	return v
}

// adminInfo is what the tests need from the admin kubeconfig.
type adminInfo struct {
	server string // https://host:port
	caPEM  []byte
	user   string // the client certificate's common name
}

func readAdmin(t *testing.T, kubeconfig string) adminInfo {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(cfg.TLSClientConfig.CertData)
	if blk == nil {
		t.Fatalf("%s: no client certificate", kubeconfig)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return adminInfo{server: cfg.Host, caPEM: cfg.TLSClientConfig.CAData, user: cert.Subject.CommonName}
}

// derivedKubeconfig writes a copy of kubeconfig whose current context uses
// namespace (when not empty) and, with noCredentials, a user without any
// credentials: `kubectl --token` then sends the token alone, not beside
// the admin's client certificate (which the server would prefer).
func derivedKubeconfig(t *testing.T, kubeconfig, namespace string, noCredentials bool) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil {
		t.Fatalf("%s: no current context", kubeconfig)
	}
	ctx = ctx.DeepCopy()
	if namespace != "" {
		ctx.Namespace = namespace
	}
	if noCredentials {
		cfg.AuthInfos["no-credentials"] = clientcmdapi.NewAuthInfo()
		ctx.AuthInfo = "no-credentials"
	}
	cfg.Contexts["derived"] = ctx
	cfg.CurrentContext = "derived"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// forbidden asserts that a kubectl command was refused with upstream's 403
// and that its message says each of wants.
func forbidden(t *testing.T, what, out string, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want Forbidden; output:\n%s", what, out)
		return
	}
	if !strings.Contains(out, "Error from server (Forbidden)") {
		t.Errorf("%s: want Error from server (Forbidden), got: %v\n%s", what, err, out)
		return
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: Forbidden message lacks %q:\n%s", what, w, out)
		}
	}
}

// exitCode is a failed command's exit status (-1 when it did not exit).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// rawGet requests path from the API server as curl -k would, with an
// optional bearer token and no client certificate.
func rawGet(t *testing.T, server, path, token string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // curl -k: what is tested is the answer, not the certificate
	}}
	req, err := http.NewRequest(http.MethodGet, server+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// jwtClaims decodes (without verifying) the claims of a JWT.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (want header.payload.signature): %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("JWT claims: %v", err)
	}
	return claims
}

// verifyJWT checks token's signature against a JWKS document (as served
// at /openid/v1/jwks): the key named by the token's kid, RS256 or ES256.
func verifyJWT(token string, jwks []byte) error {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var header struct{ Alg, Kid string }
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(raw, &header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	var set struct {
		Keys []struct{ Kid, Kty, Crv, N, E, X, Y string }
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return fmt.Errorf("JWKS: %w", err)
	}
	b64int := func(s string) *big.Int {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		return new(big.Int).SetBytes(b)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	for _, k := range set.Keys {
		if k.Kid != header.Kid {
			continue
		}
		switch {
		case header.Alg == "RS256" && k.Kty == "RSA":
			pub := &rsa.PublicKey{N: b64int(k.N), E: int(b64int(k.E).Int64())}
			return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
		case header.Alg == "ES256" && k.Kty == "EC" && k.Crv == "P-256" && len(sig) == 64:
			pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: b64int(k.X), Y: b64int(k.Y)}
			if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				return errors.New("ES256 signature does not verify")
			}
			return nil
		}
		return fmt.Errorf("key %q (%s) cannot check alg %s", k.Kid, k.Kty, header.Alg)
	}
	return fmt.Errorf("no key with kid %q in the JWKS", header.Kid)
}

// jsonString renders v as compact JSON, for substring checks.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// joinToken runs `skiff token create` against a server data dir and returns
// the token, the server URL and the CA pin it prints.
func joinToken(t *testing.T, dataDir string) (token, server, caHash string) {
	t.Helper()
	out, err := exec.Command(skiffBin(t), "token", "create", "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	token = regexp.MustCompile(`(?m)^[a-z0-9]{6}\.[a-z0-9]{16}$`).FindString(string(out))
	srv := regexp.MustCompile(`--server (\S+)`).FindStringSubmatch(string(out))
	caHash = regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(string(out))
	if token == "" || srv == nil || caHash == "" {
		t.Fatalf("token create printed:\n%s", out)
	}
	return token, srv[1], caHash
}

// csrPEM is a PEM certificate request for cn in the groups orgs, signed by
// a fresh key.
func csrPEM(t *testing.T, cn string, orgs ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn, Organization: orgs},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// waitLogs polls a pod's logs until done accepts them and returns them.
func waitLogs(t *testing.T, k kubectl, pod string, timeout time.Duration, what string, done func(string) bool) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		out, err := k.run("", "logs", pod)
		if err == nil {
			last = out
			if done(out) {
				return out
			}
		}
	}
	desc, _ := k.run("", "describe", "pod", pod)
	t.Fatalf("pod %s: %s not logged within %s; logs:\n%s\n%s", pod, what, timeout, lastLines(last, 20), desc)
	return last
}

// tcpListener is a listening TCP socket of a process.
type tcpListener struct {
	addr string // host:port
	port int
}

// processListeners reads, from /proc, the TCP sockets pid listens on: the
// inodes of its socket fds matched against the kernel's socket tables.
func processListeners(pid int) ([]tcpListener, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []tcpListener
	for _, table := range []string{"tcp", "tcp6"} {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			l, err := parseProcAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", table, err)
			}
			out = append(out, l)
		}
	}
	return out, nil
}

// parseProcAddr reads /proc/net/tcp's "HEXIP:HEXPORT" (the IP in host
// byte order, 32-bit words).
func parseProcAddr(s string) (tcpListener, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return tcpListener{}, fmt.Errorf("address %q", s)
	}
	b, err := hex.DecodeString(ipHex)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return tcpListener{}, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return tcpListener{}, fmt.Errorf("port %q", s)
	}
	ip := net.IP(b)
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1) // reachable on loopback too
	}
	return tcpListener{addr: net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), port: int(port)}, nil
}

// speaksEtcd reports whether a TCP address answers etcd's /version to a
// client without a certificate, over plain HTTP or TLS: what any local
// user of the machine could do.
func speaksEtcd(addr string) bool {
	for _, scheme := range []string{"http", "https"} {
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}}
		resp, err := c.Get(scheme + "://" + addr + "/version")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if strings.Contains(string(body), "etcdserver") || strings.Contains(string(body), "etcdcluster") {
			return true
		}
	}
	return false
}
