// Package kubelet is Skiff's node agent: it registers its Node, keeps a
// Lease and the node status fresh, and runs the pods bound to the node
// through the Container Runtime Interface. Every pod has a worker goroutine;
// the worker is woken by the pod informer, by the lifecycle-event generator
// (a relist of the runtime every second, since containerd 1.6 has no event
// stream), by probe results and by its own timers (backoff, resync).
package kubelet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/kubelet/csi"
	"github.com/skiff-dev/skiff/internal/kubelet/objcache"
	"github.com/skiff-dev/skiff/internal/kubelet/pleg"
)

// Config configures a node agent.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// NodeIP is the node's InternalIP; empty picks the address of the
	// interface that carries the default route.
	NodeIP net.IP
	// RuntimeEndpoint is the CRI socket, e.g. unix:///run/containerd/containerd.sock.
	RuntimeEndpoint string
	// DataDir holds pod volumes and kubelet state.
	DataDir string
	// LogDir is where container logs go (upstream: /var/log/pods).
	LogDir string
	// ContainerLogLinkDir holds the /var/log/containers-style symlinks;
	// empty disables them.
	ContainerLogLinkDir string
	// ClusterDNS are the nameservers of ClusterFirst pods (10.96.0.10).
	ClusterDNS    []string
	ClusterDomain string
	// CNIConfDir, when set, receives the bridge network config for the
	// node's pod CIDR once the controller manager assigns it.
	CNIConfDir string
	// CNIBridge names the bridge device (distinct per agent on one host).
	CNIBridge string
	// CgroupRoot is the parent of the per-QoS pod cgroups.
	CgroupRoot string
	// Port is the kubelet API port published in the node status.
	Port int
	// Labels are extra node labels.
	Labels map[string]string
	// Annotations are node annotations the agent owns, such as where the
	// local-path provisioner keeps this node's volumes.
	Annotations map[string]string
	// Taints are registered with the node.
	Taints []v1.Taint
	// KeepContainersOnExit leaves pods running when the agent stops.
	KeepContainersOnExit bool
	// Address is where the kubelet API listens (default all interfaces).
	Address string
	// TLS enables the kubelet API; nil leaves it off.
	TLS *ServerTLS
	// LogMaxSize and LogMaxFiles bound each container's log files.
	LogMaxSize  int64
	LogMaxFiles int

	// Intervals; zero means upstream's defaults.
	PLEGPeriod      time.Duration // 1 s
	SyncPeriod      time.Duration // 1 min
	StatusPeriod    time.Duration // 10 s check, report at least each minute
	LeaseDuration   time.Duration // 40 s, renewed each quarter
	BackoffInitial  time.Duration // 10 s
	BackoffMax      time.Duration // 5 min
	ImageGCHigh     int           // 85 (% disk used)
	ImageGCLow      int           // 80
	ContainerGCMax  int           // dead containers kept per container: 1
	MaxTotalDead    int           // -1: unlimited
	MinContainerAge time.Duration // 0

	// PinnedImages are image references the image collector never
	// removes, besides the runtime's sandbox image and the images the
	// runtime pins: images imported from archives, which no registry may
	// serve again.
	PinnedImages []string

	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Client == nil || c.NodeName == "" || c.RuntimeEndpoint == "" || c.DataDir == "" {
		return errors.New("kubelet: Client, NodeName, RuntimeEndpoint and DataDir are required")
	}
	if c.LogDir == "" {
		c.LogDir = "/var/log/pods"
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.CNIBridge == "" {
		c.CNIBridge = "skiff0"
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/kubepods"
	}
	if c.Port == 0 {
		c.Port = 10250
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PLEGPeriod, time.Second)
	def(&c.SyncPeriod, time.Minute)
	def(&c.StatusPeriod, 10*time.Second)
	def(&c.LeaseDuration, 40*time.Second)
	def(&c.BackoffInitial, 10*time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	if c.ImageGCHigh == 0 {
		c.ImageGCHigh, c.ImageGCLow = 85, 80
	}
	if c.LogMaxSize == 0 {
		c.LogMaxSize = defaultLogMaxSize
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = defaultLogMaxFiles
	}
	if c.ContainerGCMax == 0 {
		c.ContainerGCMax = 1
	}
	if c.MaxTotalDead == 0 {
		c.MaxTotalDead = -1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NodeIP == nil {
		c.NodeIP = DefaultNodeIP()
	}
	return nil
}

// Kubelet is a running node agent.
type Kubelet struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	runtime  *runtimeClient
	recorder record.EventRecorder
	// fsUsage reads a filesystem's used and total bytes (statfsUsage;
	// tests fake a full disk).
	fsUsage func(path string) (used, total uint64, err error)

	factory       informers.SharedInformerFactory // pods of this node
	nsFactory     informers.SharedInformerFactory // services (nodes may list them)
	podLister     corelisters.PodLister
	configMaps    podObjects[*v1.ConfigMap]
	secrets       podObjects[*v1.Secret]
	cmCache       *objcache.Manager[*v1.ConfigMap]
	secretCache   *objcache.Manager[*v1.Secret]
	services      corelisters.ServiceLister
	tokens        *tokenManager
	runtimeVer    string
	probes        *probeManager
	stats         statsCache
	backoff       *backoff
	metrics       *metrics
	podCIDRReady  chan struct{}
	nodeIPs       []string
	workersMu     sync.Mutex
	workers       map[types.UID]*podWorker
	admitMu       sync.Mutex // one admission decision at a time (admit.go)
	workersWG     sync.WaitGroup
	stopping      bool
	statusMu      sync.Mutex
	lastSentState map[types.UID]string // fingerprint of the last status written
	alloc         *allocations         // pods' resource allocations (resize.go)
	clock         clock.WithTicker
	pleg          *pleg.PLEG
	trustBundles  *trustBundles    // clusterTrustBundle projections (trustbundles.go)
	podCerts      *podCertificates // podCertificate projections (podcertificates.go)
	csi           *csi.Manager     // CSI driver registration and volumes
	// blockDevice stands in for the node's block devices in tests; nil
	// resolves the real ones (blockvolumes.go).
	blockDevice func(path string) (string, error)
	// unshareDataDir undoes makeShared's bind mount of the data dir.
	unshareDataDir func() error
}

// New connects to the runtime and prepares the informers; Run starts work.
func New(ctx context.Context, cfg Config) (*Kubelet, error) {
	if err := prepare(&cfg); err != nil {
		return nil, err
	}
	rt, err := dialRuntime(cfg.RuntimeEndpoint)
	if err != nil {
		return nil, err
	}
	ver, err := rt.waitReady(ctx)
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("kubelet: %w", err)
	}
	k := newKubelet(cfg, rt, ver, clock.RealClock{})
	// CSI drivers mount below the data dir with Bidirectional propagation.
	if k.unshareDataDir, err = makeShared(cfg.DataDir); err != nil {
		k.log.Warn("kubelet data dir is not a shared mount: CSI drivers' mounts will not reach pods", "err", err)
	}
	return k, nil
}

// NewWithRuntime is New over runtime services given in-process (a fake
// runtime, for benchmarks), with the real clock.
func NewWithRuntime(cfg Config, rt cri.RuntimeService, images cri.ImageManagerService) (*Kubelet, error) {
	if err := prepare(&cfg); err != nil {
		return nil, err
	}
	ver, err := rt.Version(context.Background(), "")
	if err != nil {
		return nil, fmt.Errorf("kubelet: %w", err)
	}
	return newKubelet(cfg, &runtimeClient{runtime: rt, images: images}, ver, clock.RealClock{}), nil
}

// prepare defaults cfg and creates the kubelet's directories.
func prepare(cfg *Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	for _, d := range []string{cfg.DataDir, cfg.LogDir, filepath.Join(cfg.DataDir, "pods")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("kubelet: %w", err)
		}
	}
	return nil
}

// newKubelet assembles a kubelet over a connected runtime; tests hand in
// a fake runtime and a fake clock.
func newKubelet(cfg Config, rt *runtimeClient, ver *runtimeapi.VersionResponse, clk clock.WithTicker) *Kubelet {
	m := newMetrics(cfg.Registerer)
	k := &Kubelet{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "kubelet", "node", cfg.NodeName),
		client:        cfg.Client,
		runtime:       instrument(rt, m),
		runtimeVer:    ver.RuntimeName + "://" + ver.RuntimeVersion,
		backoff:       newBackoff(cfg.BackoffInitial, cfg.BackoffMax, clk),
		metrics:       m,
		podCIDRReady:  make(chan struct{}),
		nodeIPs:       []string{cfg.NodeIP.String()},
		workers:       map[types.UID]*podWorker{},
		lastSentState: map[types.UID]string{},
		alloc:         newAllocations(filepath.Join(cfg.DataDir, "pods")),
		fsUsage:       statfsUsage,
	}
	k.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	k.nsFactory = informers.NewSharedInformerFactory(cfg.Client, 0)
	k.podLister = k.factory.Core().V1().Pods().Lister()
	// ConfigMaps and Secrets are watched one by one, as pods refer to
	// them; a change wakes the pods of the namespace to refresh volumes.
	k.cmCache = objcache.ForConfigMaps(cfg.Client, func(ns, _ string) { k.wakeNamespace(ns) })
	k.secretCache = objcache.ForSecrets(cfg.Client, func(ns, _ string) { k.wakeNamespace(ns) })
	k.configMaps, k.secrets = k.cmCache, k.secretCache
	k.services = k.nsFactory.Core().V1().Services().Lister()
	k.tokens = newTokenManager(cfg.Client)
	k.podCerts = newPodCertificates(cfg.Client, cfg.NodeName, clk, rand.Reader, k.log)
	k.probes = newProbeManager(k.probe, func() record.EventRecorder { return k.recorder }, k.wakePod, clk)
	k.probes.startedAt = k.containerStartedAt
	k.clock = clk
	k.pleg = k.newPLEG()
	k.csi = csi.New(csi.Config{
		Client: cfg.Client, NodeName: cfg.NodeName, DataDir: cfg.DataDir,
		PodsDir: filepath.Join(cfg.DataDir, "pods"), Logger: k.log,
		ReportInUse: k.reportVolumesInUse,
		Tokens:      k.tokens, Clock: clk,
		Recorder: func() record.EventRecorder { return k.recorder },
	})
	k.metrics.registerPLEG(cfg.Registerer, cfg.NodeName, k.pleg)
	return k
}

// Run registers the node and runs pods until ctx ends. On return every
// goroutine it started has stopped; pods are stopped too unless
// KeepContainersOnExit.
func (k *Kubelet) Run(ctx context.Context) error {
	defer k.runtime.Close()
	stopEvents, recorder := startRecorder(ctx, k.client, k.cfg.NodeName)
	defer stopEvents()
	k.recorder = recorder

	var api net.Listener
	if k.cfg.TLS != nil {
		ln, err := k.listenTLS()
		if err != nil {
			return err
		}
		api = ln
	}
	if err := k.registerNode(ctx); err != nil {
		if api != nil {
			api.Close()
		}
		return err
	}
	var loops sync.WaitGroup
	loop := func(f func(context.Context)) {
		loops.Add(1)
		go func() { defer loops.Done(); f(ctx) }()
	}
	loop(k.runLease)
	loop(k.runNodeStatus)
	loop(k.runPodCIDRWatch)
	loop(k.csi.Run) // after registerNode: the CSINode is owned by the Node

	k.trustBundles = newTrustBundles(ctx.Done(), k.client, k.wakeTrustBundlePods)
	podInformer := k.factory.Core().V1().Pods().Informer()
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podChanged(ctx, obj) },
		UpdateFunc: func(old, obj any) { k.podUpdated(ctx, old, obj) },
		DeleteFunc: func(obj any) { k.podDeleted(obj) },
	}); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	// Service changes update the environment of containers started later.
	refresh := cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, obj any) { k.namespaceObjectChanged(obj) }}
	if _, err := k.nsFactory.Core().V1().Services().Informer().AddEventHandler(refresh); err != nil {
		return fmt.Errorf("kubelet: %w", err)
	}
	loop(k.cmCache.Run)
	loop(k.secretCache.Run)
	k.nsFactory.Start(ctx.Done())
	k.nsFactory.WaitForCacheSync(ctx.Done())
	k.factory.Start(ctx.Done())
	k.factory.WaitForCacheSync(ctx.Done())

	loop(k.pleg.Run)
	loop(k.runGC)
	loop(k.runLogRotation)
	loop(k.runStatsSampler)
	if api != nil {
		loop(func(ctx context.Context) { k.serve(ctx, api) })
	}
	k.log.Info("kubelet running", "runtime", k.runtimeVer, "nodeIP", k.cfg.NodeIP)

	<-ctx.Done()
	k.shutdown()
	loops.Wait()
	k.factory.Shutdown()
	k.nsFactory.Shutdown()
	if k.unshareDataDir != nil && !k.cfg.KeepContainersOnExit {
		// The pods are gone, so nothing is mounted below any more.
		if err := k.unshareDataDir(); err != nil {
			k.log.Warn("unmount kubelet data dir", "err", err)
		}
	}
	return nil
}

// shutdown stops every pod worker and, unless told to keep them, the pods.
func (k *Kubelet) shutdown() {
	k.workersMu.Lock()
	k.stopping = true
	workers := make([]*podWorker, 0, len(k.workers))
	for _, w := range k.workers {
		workers = append(workers, w)
	}
	k.workersMu.Unlock()
	for _, w := range workers {
		w.stop()
	}
	k.workersWG.Wait()
	k.probes.stopAll()
	if k.cfg.KeepContainersOnExit {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func(w *podWorker) {
			defer wg.Done()
			pod := w.currentPod()
			if pod == nil {
				return
			}
			// Removing the sandboxes too frees their mounts, so the data dir
			// can be deleted; a restarted agent recreates the pods.
			if err := k.killPod(ctx, pod, shutdownGrace(pod), true); err != nil {
				k.log.Warn("stop pod at shutdown", "pod", podKey(pod), "err", err)
			}
		}(w)
	}
	wg.Wait()
}

func shutdownGrace(pod *v1.Pod) int64 {
	g := int64(v1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	return min(g, 10)
}

func podKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

// DefaultNodeIP is the source address of the default route's interface,
// falling back to the first non-loopback IPv4, then loopback.
func DefaultNodeIP() net.IP {
	if conn, err := net.Dial("udp", "192.0.2.255:9"); err == nil {
		defer conn.Close()
		if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
			return a.IP
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP
			}
		}
	}
	return net.ParseIP("127.0.0.1")
}
