package csi

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
)

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
	Logger      *slog.Logger
}

// Manager registers CSI drivers and mounts their volumes for pods.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	drivers *registry
	watcher *pluginWatcher
	locks   keyedMutex // per volume: stage, publish and teardown decisions
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
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "csi"), drivers: newRegistry()}
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
