package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiff-dev/skiff/internal/cluster"
	"github.com/skiff-dev/skiff/internal/containerd"
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

func runUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff", "directory for the server (DIR/server) and the agent (DIR/agent)")
	bind := fs.String("bind-address", "127.0.0.1", "address the API server listens on")
	port := fs.Int("secure-port", 6443, "HTTPS port of the API server (0 picks a free port)")
	serviceCIDR := fs.String("service-cluster-ip-range", "10.96.0.0/12", "IPv4 range Service cluster IPs are allocated from")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network; each node gets a /24 of it")
	nodeName := fs.String("node-name", "", "name of this node (default: the hostname)")
	nodeIP := fs.String("node-ip", "", "the node's InternalIP (default: the address of the default route)")
	kubeletPort := fs.Int("kubelet-port", 10250, "port of the kubelet API")
	imagesDir := fs.String("images-dir", defaultImagesDir(), "image archives (*.tar) imported into the node's containerd at start")
	keep := fs.Bool("keep-containers", false, "leave pods running when skiff stops")
	bridge := fs.String("cni-bridge", "skiff0", "name of the pod network bridge")
	logDir := fs.String("pod-log-dir", "/var/log/pods", "where container logs are written")
	dnsPort := fs.Int("dns-port", 53, "port of the node's cluster DNS server on the node IP")
	pprofAddr := fs.String("pprof-address", "", "serve Go's /debug/pprof on this address (empty: off)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
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
	if *pprofAddr != "" {
		go servePprof(*pprofAddr, log)
	}
	return cluster.RunUp(ctx, cluster.UpConfig{
		Server: cluster.ServerConfig{
			BindAddress: *bind, SecurePort: *port, ServiceCIDR: *serviceCIDR, ClusterCIDR: *clusterCIDR,
		},
		DataDir: *dataDir, NodeName: *nodeName, NodeIP: ip, KubeletPort: *kubeletPort,
		ImagesDir: *imagesDir, KeepContainers: *keep, CNIBridge: *bridge, LogDir: *logDir, DNSPort: *dnsPort, Logger: log,
	})
}

func runAgent(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff/agent", "directory for the agent's containerd, volumes and state")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig with the node's credentials for the API server")
	nodeName := fs.String("node-name", "", "name of this node (default: the hostname)")
	nodeIP := fs.String("node-ip", "", "the node's InternalIP (default: the address of the default route)")
	endpoint := fs.String("container-runtime-endpoint", "", "CRI socket of a running containerd (default: start one under the data dir)")
	kubeletPort := fs.Int("kubelet-port", 10250, "port of the kubelet API")
	clusterDNS := fs.String("cluster-dns", "10.96.0.10", "comma-separated cluster DNS addresses for ClusterFirst pods")
	bridge := fs.String("cni-bridge", "skiff0", "name of the pod network bridge (distinct per agent on one host)")
	imagesDir := fs.String("images-dir", defaultImagesDir(), "image archives (*.tar) imported into the agent's containerd at start")
	logDir := fs.String("pod-log-dir", "/var/log/pods", "where container logs are written")
	keep := fs.Bool("keep-containers", false, "leave pods running when the agent stops")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network of the cluster (for the service proxy)")
	noProxy := fs.Bool("disable-proxy", false, "do not run the service proxy")
	dnsPort := fs.Int("dns-port", 53, "port of the node's cluster DNS server on the node IP")
	noDNS := fs.Bool("disable-dns", false, "do not serve cluster DNS on this node")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("agent: --kubeconfig is required")
	}
	log := newLogger(*logLevel)
	ip, err := parseNodeIP(*nodeIP)
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var dns []string
	if *clusterDNS != "" {
		dns = strings.Split(*clusterDNS, ",")
	}
	return cluster.RunAgent(ctx, cluster.AgentConfig{
		DataDir: *dataDir, NodeName: *nodeName, Kubeconfig: *kubeconfig, RuntimeEndpoint: *endpoint,
		ImagesDir: *imagesDir, NodeIP: ip, KubeletPort: *kubeletPort, ClusterDNS: dns, CNIBridge: *bridge,
		KeepContainers: *keep, LogDir: *logDir, ClusterCIDR: *clusterCIDR, DisableProxy: *noProxy,
		DNSPort: *dnsPort, DisableDNS: *noDNS, Logger: log,
	})
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
