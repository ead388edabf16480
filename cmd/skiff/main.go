// busybox's wget, the HTTPS client of many small images, sends no
// signature_algorithms in its TLS 1.2 ClientHello, which means "SHA-1" by
// RFC 5246; Go refuses that by default since 1.25. Pods must be able to
// reach the API server with it, so SHA-1 handshake signatures stay allowed
// for such clients (clients that list algorithms still get SHA-256 or
// better; certificates are unaffected).

//go:debug tlssha1=1

// Command skiff runs every part of a Skiff cluster: `skiff server` for the
// control plane, and (as they arrive) agent, up and the tools around them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/skiff-dev/skiff/internal/cluster"
	"github.com/skiff-dev/skiff/internal/procmetrics"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	// Every /metrics endpoint serves the default registry's process
	// series; collect them cheaply.
	procmetrics.ReplaceDefault()
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer("server", os.Args[2:])
	case "up":
		err = runUp(os.Args[2:])
	case "agent", "kubelet":
		err = runAgent(os.Args[1], os.Args[2:])
	case "images":
		err = runImages(os.Args[2:])
	case "token":
		err = runToken(os.Args[2:])
	case "etcd-snapshot":
		err = runEtcdSnapshot(os.Args[2:])
	case "proxy":
		err = runProxy(os.Args[2:])
	case "killall":
		err = runKillall(os.Args[2:])
	case "scheduler":
		err = runScheduler(os.Args[2:])
	case "controller-manager":
		err = runControllerManager(os.Args[2:])
	case "sim":
		err = runSim(os.Args[2:])
	case "version", "--version":
		fmt.Println("skiff", cluster.KubernetesVersion+"+skiff")
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "skiff: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "skiff:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: skiff <command> [flags]

commands:
  server    run etcd and the Kubernetes API server
  scheduler run the scheduler against an API server (--kubeconfig)
  controller-manager
            run the controllers against an API server (--kubeconfig)
  up        run a single-node cluster: server and agent in one process
  agent     run a node: kubelet (and its containerd) against a server (--kubeconfig)
  kubelet   the same as agent
  images    images import FILE.tar: load an image archive into the node's containerd
  proxy     run the service proxy (--kubeconfig), or remove its rules (--cleanup)
  token     token create: a join token for new nodes
  etcd-snapshot save [--data-dir DIR] [FILE] | restore FILE --data-dir NEWDIR [--force] | ls | verify FILE
            back up, restore, list or check etcd snapshots
  killall   stop every container of a stopped node and unmount its data dir
  sim       run simulated nodes for scale tests against a server (--kubeconfig, --nodes N)
  version   print the version
`)
}

// newLogger returns the process logger; client-go's klog output is routed
// through it so that every line has one format and one level filter.
func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	klog.SetSlogLogger(log)
	return log
}

// servePprof exposes the Go profiler, for benchmarks and debugging.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof server", "err", err)
	}
}

// setGCPercent sets the GC target of a server process. Go's default of 100
// lets the heap reach twice the live objects; at scale the server's heap is
// mostly the watch cache, and 50 keeps its memory about 30 % lower for
// about a fifth fewer writes per second (docs/scale.md). A GOGC variable in
// the environment is an explicit choice and wins over the flag's default.
func setGCPercent(fs *flag.FlagSet, percent int) {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "gc-percent" })
	if percent <= 0 || (!explicit && os.Getenv("GOGC") != "") {
		return
	}
	debug.SetGCPercent(percent)
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func runServer(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff/server", "directory for etcd data, certificates and the admin kubeconfig")
	bind := fs.String("bind-address", "127.0.0.1", "address the API server listens on")
	advertise := fs.String("advertise-address", "", "address pods reach the API server at (the kubernetes Service's endpoint; default: the bind address, or the default route's address when that is loopback)")
	port := fs.Int("secure-port", 6443, "HTTPS port of the API server (0 picks a free port)")
	etcdServers := fs.String("etcd-servers", "", "comma-separated URLs of an external etcd cluster; empty runs etcd embedded")
	etcdCA := fs.String("etcd-cafile", "", "CA file verifying the external etcd servers' certificates")
	etcdCert := fs.String("etcd-certfile", "", "client certificate for the external etcd servers")
	etcdKey := fs.String("etcd-keyfile", "", "key of --etcd-certfile")
	encConfig := fs.String("encryption-provider-config", "", "EncryptionConfiguration file (apiserver.config.k8s.io/v1) naming the resources to encrypt at rest, e.g. secrets")
	serviceCIDR := fs.String("service-cluster-ip-range", "10.96.0.0/12", "IPv4 range Service cluster IPs are allocated from")
	nodePorts := fs.String("service-node-port-range", "30000-32767", "port range NodePort services are allocated from")
	noSched := fs.Bool("disable-scheduler", false, "do not run the built-in scheduler")
	noCtrl := fs.Bool("disable-controllers", false, "do not run the built-in controller manager")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network; each node gets a /24 of it")
	signingDuration := fs.Duration("cluster-signing-duration", 8760*time.Hour, "longest lifetime of certificates signed for CertificateSigningRequests")
	dashboardPort := fs.Int("dashboard-port", 6480, "HTTPS port of the web dashboard on the bind address (0 disables it)")
	dashboardWritable := fs.Bool("dashboard-writable", false, "let the dashboard pass changes (not only GET requests) to the API server, still with the user's own token")
	pprofAddr := fs.String("pprof-address", "", "serve Go's /debug/pprof on this address (empty: off)")
	gcPercent := fs.Int("gc-percent", 50, "Go's GC target: how far the heap grows, in percent of the live heap, before a collection; lower trades CPU for memory (0 or a GOGC environment variable, unless this flag is given: Go's own setting)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	saFlags := addServiceAccountFlags(fs)
	fcFlags := addFlowControlFlags(fs)
	snapFlags := addSnapshotFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*logLevel)
	slog.SetDefault(log)
	ctx, stop := signalContext()
	defer stop()
	if *snapFlags.clusterReset {
		return clusterReset(ctx, *dataDir, *etcdServers, *snapFlags.restorePath, log)
	}
	if *pprofAddr != "" {
		go servePprof(*pprofAddr, log)
	}
	setGCPercent(fs, *gcPercent)
	dir := *dataDir
	var endpoints []string
	if *etcdServers != "" {
		endpoints = strings.Split(*etcdServers, ",")
	}
	srv, err := cluster.StartServer(ctx, snapFlags.apply(fcFlags.apply(saFlags.apply(cluster.ServerConfig{
		DataDir: dir, BindAddress: *bind, AdvertiseAddress: *advertise, SecurePort: *port, EtcdServers: endpoints,
		ServiceCIDR: *serviceCIDR, NodePortRange: *nodePorts, DisableScheduler: *noSched,
		DisableControllers: *noCtrl, ClusterCIDR: *clusterCIDR, ClusterSigningDuration: *signingDuration, Logger: log,
		EtcdCAFile: *etcdCA, EtcdCertFile: *etcdCert, EtcdKeyFile: *etcdKey, EncryptionProviderConfig: *encConfig,
		DashboardPort: *dashboardPort, DashboardWritable: *dashboardWritable,
	}))))
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	srv.Wait()
	return nil
}

func runScheduler(args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	metricsAddr := fs.String("metrics-bind-address", "127.0.0.1:10259", "address of the /metrics endpoint (empty: none)")
	leaderElect := fs.Bool("leader-elect", true, "take the kube-system/kube-scheduler lease before scheduling")
	qps := fs.Float64("kube-api-qps", -1, "client-side rate limit towards the API server (-1: none)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*logLevel)
	slog.SetDefault(log)
	ctx, stop := signalContext()
	defer stop()
	return cluster.RunScheduler(ctx, cluster.SchedulerConfig{
		Kubeconfig: *kubeconfig, MetricsAddress: *metricsAddr, LeaderElect: *leaderElect, QPS: float32(*qps), Logger: log,
	})
}

func runControllerManager(args []string) error {
	fs := flag.NewFlagSet("controller-manager", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	leaderElect := fs.Bool("leader-elect", true, "take the kube-system/kube-controller-manager lease before reconciling")
	clusterCIDR := fs.String("cluster-cidr", "10.42.0.0/16", "pod network; each node gets a /24 of it")
	useSACreds := fs.Bool("use-service-account-credentials", false, "run each controller as its own ServiceAccount in kube-system, with its system:controller:<name> role")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*logLevel)
	slog.SetDefault(log)
	ctx, stop := signalContext()
	defer stop()
	return cluster.RunControllerManager(ctx, cluster.ControllerManagerConfig{Kubeconfig: *kubeconfig, LeaderElect: *leaderElect, ClusterCIDR: *clusterCIDR,
		UseServiceAccountCredentials: *useSACreds, Logger: log})
}
