package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiff-dev/skiff/internal/cluster"
	"github.com/skiff-dev/skiff/internal/containerd"
	"github.com/skiff-dev/skiff/internal/kubelet"
	"github.com/skiff-dev/skiff/internal/proxy"
)

// defaultImagesDir is bin/images beside the skiff binary, where
// `make images` puts the locally built pause and busybox archives.
func defaultImagesDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), "images")
}

func parseNodeIP(s string) (net.IP, error) {
	if s == "" {
		return nil, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, fmt.Errorf("--node-ip %q is not an IP address", s)
	}
	return ip, nil
}

// advertiseOr is the advertise address of `skiff up`: the flag, else the
// node's own IP, which pods on this node can always reach.
func advertiseOr(flag string, nodeIP net.IP) string {
	if flag == "" && nodeIP != nil {
		return nodeIP.String()
	}
	return flag
}

func runUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff", "directory for the server (DIR/server) and the agent (DIR/agent)")
	bind := fs.String("bind-address", "127.0.0.1", "address the API server listens on")
	advertise := fs.String("advertise-address", "", "address pods reach the API server at (default: the node IP)")
	port := fs.Int("secure-port", 6443, "HTTPS port of the API server (0 picks a free port)")
	serviceCIDR := fs.String("service-cluster-ip-range", "10.96.0.0/12", "IPv4 range Service cluster IPs are allocated from")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network; each node gets a /24 of it")
	signingDuration := fs.Duration("cluster-signing-duration", 8760*time.Hour, "longest lifetime of certificates signed for CertificateSigningRequests")
	encConfig := fs.String("encryption-provider-config", "", "EncryptionConfiguration file (apiserver.config.k8s.io/v1) naming the resources to encrypt at rest, e.g. secrets")
	nodeName := fs.String("node-name", "", "name of this node (default: the hostname)")
	nodeIP := fs.String("node-ip", "", "the node's InternalIP (default: the address of the default route)")
	kubeletPort := fs.Int("kubelet-port", 10250, "port of the kubelet API")
	imagesDir := fs.String("images-dir", defaultImagesDir(), "image archives (*.tar) imported into the node's containerd at start")
	keep := fs.Bool("keep-containers", false, "leave pods running when skiff stops")
	storage := fs.String("storage-dir", "", "where the local-path provisioner keeps this node's volumes (default DIR/agent/storage)")
	bridge := fs.String("cni-bridge", "skiff0", "name of the pod network bridge")
	logDir := fs.String("pod-log-dir", "/var/log/pods", "where container logs are written")
	dnsPort := fs.Int("dns-port", 53, "port of the node's cluster DNS server on the node IP")
	ingressHTTP := fs.Int("ingress-http-port", 80, "port of the built-in ingress controller's HTTP on the node IP")
	ingressHTTPS := fs.Int("ingress-https-port", 443, "port of the built-in ingress controller's HTTPS on the node IP")
	dashboardPort := fs.Int("dashboard-port", 6480, "HTTPS port of the web dashboard on the bind address (0 disables it)")
	dashboardWritable := fs.Bool("dashboard-writable", false, "let the dashboard pass changes (not only GET requests) to the API server, still with the user's own token")
	pprofAddr := fs.String("pprof-address", "", "serve Go's /debug/pprof on this address (empty: off)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	saFlags := addServiceAccountFlags(fs)
	fcFlags := addFlowControlFlags(fs)
	snapFlags := addSnapshotFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*logLevel)
	ip, err := parseNodeIP(*nodeIP)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	if *snapFlags.clusterReset {
		return clusterReset(ctx, filepath.Join(*dataDir, "server"), "", *snapFlags.restorePath, log)
	}
	if *pprofAddr != "" {
		go servePprof(*pprofAddr, log)
	}
	return cluster.RunUp(ctx, cluster.UpConfig{
		Server: snapFlags.apply(fcFlags.apply(saFlags.apply(cluster.ServerConfig{
			BindAddress: *bind, AdvertiseAddress: advertiseOr(*advertise, ip), SecurePort: *port, ServiceCIDR: *serviceCIDR, ClusterCIDR: *clusterCIDR,
			ClusterSigningDuration:   *signingDuration,
			EncryptionProviderConfig: *encConfig,
			DashboardPort:            *dashboardPort, DashboardWritable: *dashboardWritable,
		}))),
		DataDir: *dataDir, NodeName: *nodeName, NodeIP: ip, KubeletPort: *kubeletPort,
		ImagesDir: *imagesDir, KeepContainers: *keep, StorageDir: *storage, CNIBridge: *bridge, LogDir: *logDir, DNSPort: *dnsPort,
		IngressHTTPPort: *ingressHTTP, IngressHTTPSPort: *ingressHTTPS, Logger: log,
	})
}

func runAgent(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff/agent", "directory for the agent's credentials, containerd, volumes and state")
	server := fs.String("server", "", "URL of the API server to join, e.g. https://10.0.0.1:6443; several, comma-separated, to fail over")
	metricsAddr := fs.String("metrics-bind-address", "", "serve the service proxy's and DNS server's /metrics over HTTP here, as kube-proxy's 127.0.0.1:10249 (empty: off)")
	tokenFile := fs.String("token-file", "", "file holding a join token from `skiff token create`")
	caHash := fs.String("ca-cert-hash", "", "sha256:<hex> pin of the server's CA (printed by `skiff token create`)")
	unsafeSkipCA := fs.Bool("unsafe-skip-ca-verification", false, "join without --ca-cert-hash, trusting any server that knows the token")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig with the node's credentials (instead of --server and --token-file)")
	renewBefore := fs.Duration("renew-certificate-before", 30*24*time.Hour, "at start, renew the node's client certificate when it expires within this")
	nodeName := fs.String("node-name", "", "name of this node (default: the hostname)")
	nodeIP := fs.String("node-ip", "", "the node's InternalIP (default: the address of the default route)")
	endpoint := fs.String("container-runtime-endpoint", "", "CRI socket of a running containerd (default: start one under the data dir)")
	kubeletPort := fs.Int("kubelet-port", 10250, "port of the kubelet API")
	clusterDNS := fs.String("cluster-dns", "10.96.0.10", "comma-separated cluster DNS addresses for ClusterFirst pods")
	bridge := fs.String("cni-bridge", "skiff0", "name of the pod network bridge (distinct per agent on one host)")
	imagesDir := fs.String("images-dir", defaultImagesDir(), "image archives (*.tar) imported into the agent's containerd at start")
	logDir := fs.String("pod-log-dir", "/var/log/pods", "where container logs are written")
	keep := fs.Bool("keep-containers", false, "leave pods running when the agent stops")
	storage := fs.String("storage-dir", "", "where the local-path provisioner keeps this node's volumes (default DIR/storage)")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network of the cluster (for the service proxy)")
	noProxy := fs.Bool("disable-proxy", false, "do not run the service proxy")
	dnsPort := fs.Int("dns-port", 53, "port of the node's cluster DNS server on the node IP")
	noDNS := fs.Bool("disable-dns", false, "do not serve cluster DNS on this node")
	ingressHTTP := fs.Int("ingress-http-port", 80, "port of the built-in ingress controller's HTTP on the node IP")
	ingressHTTPS := fs.Int("ingress-https-port", 443, "port of the built-in ingress controller's HTTPS on the node IP")
	noIngress := fs.Bool("disable-ingress", false, "do not serve Ingresses on this node")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*logLevel)
	ip, err := parseNodeIP(*nodeIP)
	if err != nil {
		return err
	}
	name := *nodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("agent: no --node-name and no hostname: %w", err)
		}
		name = strings.ToLower(h)
	}
	ctx, stop := signalContext()
	defer stop()
	kc := *kubeconfig
	if kc == "" {
		kc, err = cluster.NodeCredentials(ctx, cluster.CredentialsConfig{DataDir: *dataDir, Servers: splitList(*server),
			TokenFile: *tokenFile, CAHash: *caHash, UnsafeSkipCAVerification: *unsafeSkipCA, NodeName: name, RenewBefore: *renewBefore, Logger: log})
		if err != nil {
			return err
		}
	}
	if ip == nil {
		ip = kubelet.DefaultNodeIP()
	}
	kubeletTLS, err := cluster.KubeletServingTLS(ctx, cluster.KubeletServingConfig{
		Kubeconfig: kc, DataDir: *dataDir, NodeName: name, NodeIP: ip, RenewBefore: *renewBefore, Logger: log,
	})
	if err != nil {
		return err
	}
	dns := splitList(*clusterDNS)
	return cluster.RunAgent(ctx, cluster.AgentConfig{
		DataDir: *dataDir, NodeName: name, Kubeconfig: kc, RuntimeEndpoint: *endpoint,
		ImagesDir: *imagesDir, NodeIP: ip, KubeletPort: *kubeletPort, ClusterDNS: dns, CNIBridge: *bridge,
		Servers:        splitList(*server),
		KeepContainers: *keep, StorageDir: *storage, LogDir: *logDir, ClusterCIDR: *clusterCIDR, DisableProxy: *noProxy,
		DNSPort: *dnsPort, DisableDNS: *noDNS, KubeletTLS: kubeletTLS,
		IngressHTTPPort: *ingressHTTP, IngressHTTPSPort: *ingressHTTPS, DisableIngress: *noIngress, Logger: log,
		MetricsAddress: *metricsAddr,
	})
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func runToken(args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: skiff token create [--data-dir DIR | --kubeconfig FILE] [--ttl 24h]")
	}
	fs := flag.NewFlagSet("token create", flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff", "data dir of the server (or of `skiff up`)")
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig (default: the one under --data-dir)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid (0: forever)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	token, joinHint, err := cluster.CreateJoinToken(ctx, *dataDir, *kubeconfig, *ttl)
	if err != nil {
		return err
	}
	fmt.Println(token)
	fmt.Fprintln(os.Stderr, joinHint)
	return nil
}

func runProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for the API server")
	nodeName := fs.String("node-name", "", "name of this node (default: the hostname)")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network of the cluster")
	cleanup := fs.Bool("cleanup", false, "remove every Skiff rule from this node and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*logLevel)
	ctx, stop := signalContext()
	defer stop()
	if *cleanup {
		return proxy.Cleanup(ctx, nil)
	}
	if *kubeconfig == "" {
		return errors.New("proxy: --kubeconfig is required")
	}
	return cluster.RunProxy(ctx, *kubeconfig, *nodeName, *clusterCIDR, log)
}

func runImages(args []string) error {
	if len(args) == 0 || args[0] != "import" {
		return errors.New("usage: skiff images import [--data-dir DIR | --address SOCKET] FILE.tar...")
	}
	fs := flag.NewFlagSet("images import", flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff", "data dir of `skiff up` (or of an agent) whose containerd receives the images")
	address := fs.String("address", "", "containerd socket (default: the one under --data-dir)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("images import: no archive given")
	}
	socket := *address
	if socket == "" {
		socket = findContainerdSocket(*dataDir)
	}
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("images import: no containerd socket at %s (is the node running? use --data-dir or --address)", socket)
	}
	ctx, stop := signalContext()
	defer stop()
	for _, archive := range fs.Args() {
		if err := cluster.ImportImage(ctx, socket, archive); err != nil {
			return err
		}
		fmt.Println("imported", archive)
	}
	return nil
}

// findContainerdSocket accepts the data dir of `up` (DIR/agent/containerd)
// or of an agent (DIR/containerd).
func findContainerdSocket(dir string) string {
	for _, d := range []string{filepath.Join(dir, "agent", "containerd"), filepath.Join(dir, "containerd")} {
		if _, err := os.Stat(containerd.SocketPath(d)); err == nil {
			return containerd.SocketPath(d)
		}
	}
	return containerd.SocketPath(filepath.Join(dir, "agent", "containerd"))
}

func runKillall(args []string) error {
	fs := flag.NewFlagSet("killall", flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff", "data dir of `skiff up` or of an agent")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	return cluster.KillAll(ctx, *dataDir, newLogger(*logLevel))
}
