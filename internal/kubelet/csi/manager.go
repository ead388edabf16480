package csi

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// TokenSource fetches ServiceAccount tokens bound to a pod for CSIDriver
// tokenRequests; the kubelet's token cache, shared with projected
// volumes, implements it. An empty audience means the API server's
// audiences, nil expirationSeconds the API's default.
type TokenSource interface {
	PodToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds *int64) (authenticationv1.TokenRequestStatus, error)
}

// Config configures a Manager.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// DataDir is the kubelet's data directory; plugins_registry and
	// plugins live under it.
	DataDir string
	// PodsDir holds the pod directories (the kubelet's DataDir/pods).
	PodsDir string
	// PollInterval is how often plugins_registry is listed (1 s).
	PollInterval time.Duration
	// ReportInUse writes the node's status now, so that volumesInUse
	// lists VolumesInUse; attachable volumes are staged only after it
	// succeeds. Nil skips the report.
	ReportInUse func(context.Context) error
	// Tokens serves CSIDrivers' tokenRequests; without it a publish for
	// such a driver fails.
	Tokens TokenSource
	// Recorder, when it returns non-nil, gets events for failed
	// republishes, which do not fail the pod's sync.
	Recorder func() record.EventRecorder
	// Clock times republishes (the real clock when nil).
	Clock  clock.PassiveClock
	Logger *slog.Logger
}

// Manager registers CSI drivers and mounts their volumes for pods.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	drivers *registry
	watcher *pluginWatcher
	locks   keyedMutex // per volume: stage, publish and teardown decisions

	mu        sync.Mutex
	published map[string]publishState // by pod volume dir
}

// New returns a Manager; Run starts the plugin watcher. Client, NodeName,
// DataDir and PodsDir are required.
func New(cfg Config) *Manager {
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "csi"), drivers: newRegistry(),
		published: map[string]publishState{}}
	m.watcher = newPluginWatcher(m.RegistryDir(), m, m.log)
	return m
}

// RegistryDir is where plugins put their registration sockets.
func (m *Manager) RegistryDir() string { return filepath.Join(m.cfg.DataDir, "plugins_registry") }

// Run creates the node's CSINode and watches plugins_registry until ctx
// ends; then it closes the connections to the drivers.
func (m *Manager) Run(ctx context.Context) {
	defer m.drivers.closeAll()
	csiNodeReady := false
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		if !csiNodeReady {
			if err := m.ensureCSINode(ctx); err != nil {
				if ctx.Err() == nil {
					m.log.Warn("create CSINode", "err", err)
				}
			} else {
				csiNodeReady = true
			}
		}
		m.watcher.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
