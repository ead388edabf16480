package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// retryAfter spaces out registration attempts of a socket that failed.
const retryAfter = 5 * time.Second

// errNotCSI is a plugin of another type (device, DRA): it is refused once
// and left alone until its socket changes.
var errNotCSI = errors.New("plugin type is not supported by skiff")

// pluginWatcher tracks the sockets in plugins_registry. Only sync touches
// its state, from one goroutine.
type pluginWatcher struct {
	dir     string
	handler pluginHandler
	log     *slog.Logger
	sockets map[string]*watchedSocket // by path
}

// pluginHandler registers and deregisters one plugin socket.
type pluginHandler interface {
	registerPlugin(ctx context.Context, socket string) (driver string, err error)
	deregisterPlugin(ctx context.Context, driver, socket string)
}

type watchedSocket struct {
	ino       uint64 // a re-created socket is a new plugin instance
	driver    string // set once registered
	ignored   bool   // not a CSI plugin
	nextTry   time.Time
	lastError string
}

func newPluginWatcher(dir string, h pluginHandler, log *slog.Logger) *pluginWatcher {
	return &pluginWatcher{dir: dir, handler: h, log: log, sockets: map[string]*watchedSocket{}}
}

// sync registers new sockets and deregisters removed (or replaced) ones.
func (w *pluginWatcher) sync(ctx context.Context) {
	present := w.list()
	for path, s := range w.sockets {
		if ino, ok := present[path]; !ok || ino != s.ino {
			if s.driver != "" {
				w.handler.deregisterPlugin(ctx, s.driver, path)
			}
			delete(w.sockets, path)
		}
	}
	now := time.Now()
	for path, ino := range present {
		s := w.sockets[path]
		if s == nil {
			s = &watchedSocket{ino: ino}
			w.sockets[path] = s
		}
		if s.driver != "" || s.ignored || now.Before(s.nextTry) {
			continue
		}
		name, err := w.handler.registerPlugin(ctx, path)
		if err != nil {
			s.ignored = errors.Is(err, errNotCSI)
			s.nextTry = now.Add(retryAfter)
			if msg := err.Error(); msg != s.lastError && ctx.Err() == nil {
				s.lastError = msg
				w.log.Warn("plugin registration failed", "socket", path, "err", err)
			}
			continue
		}
		s.driver = name
	}
}

// list returns the sockets in the directory with their inode numbers;
// names starting with a dot are ignored, as upstream does.
func (w *pluginWatcher) list() map[string]uint64 {
	out := map[string]uint64{}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return out
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.Type()&os.ModeSocket == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		var ino uint64
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		out[filepath.Join(w.dir, e.Name())] = ino
	}
	return out
}

// registerPlugin asks the socket what it is and, for a CSI driver,
// registers it; the plugin is told the outcome either way.
func (m *Manager) registerPlugin(ctx context.Context, socket string) (string, error) {
	conn, err := dialUnix(socket)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	client := registerapi.NewRegistrationClient(conn)
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := client.GetInfo(callCtx, &registerapi.InfoRequest{})
	if err != nil {
		return "", fmt.Errorf("GetInfo: %w", err)
	}
	regErr := m.registerDriver(callCtx, info, socket)
	status := &registerapi.RegistrationStatus{PluginRegistered: regErr == nil}
	if regErr != nil {
		status.Error = regErr.Error()
	}
	if _, err := client.NotifyRegistrationStatus(callCtx, status); err != nil && regErr == nil {
		m.deregisterPlugin(ctx, info.GetName(), socket)
		return "", fmt.Errorf("NotifyRegistrationStatus: %w", err)
	}
	if regErr != nil {
		return "", regErr
	}
	m.log.Info("CSI driver registered", "driver", info.GetName(), "socket", socket)
	return info.GetName(), nil
}

// registerDriver validates a plugin's info, connects to its CSI endpoint
// and publishes what NodeGetInfo says in the CSINode and Node objects.
func (m *Manager) registerDriver(ctx context.Context, info *registerapi.PluginInfo, socket string) error {
	if info.GetType() != registerapi.CSIPlugin {
		return fmt.Errorf("%w: %q", errNotCSI, info.GetType())
	}
	if err := validDriverName(info.GetName()); err != nil {
		return err
	}
	if !supportsV1(info.GetSupportedVersions()) {
		return fmt.Errorf("CSI driver %s: none of the versions %v is supported (need 1.x)", info.GetName(), info.GetSupportedVersions())
	}
	endpoint := info.GetEndpoint()
	if endpoint == "" {
		endpoint = socket
	}
	d, err := dialDriver(info.GetName(), endpoint, socket)
	if err != nil {
		return err
	}
	if err := m.installDriver(ctx, d); err != nil {
		d.conn.Close()
		return fmt.Errorf("CSI driver %s: %w", d.name, err)
	}
	m.drivers.add(d)
	return nil
}

// deregisterPlugin forgets a driver whose socket went away and drops its
// CSINode entry.
func (m *Manager) deregisterPlugin(ctx context.Context, name, socket string) {
	if !m.drivers.remove(name, socket) {
		return
	}
	m.log.Info("CSI driver deregistered", "driver", name, "socket", socket)
	if err := m.uninstallDriver(ctx, name); err != nil && ctx.Err() == nil {
		m.log.Warn("remove CSI driver from CSINode", "driver", name, "err", err)
	}
}

func supportsV1(versions []string) bool {
	for _, v := range versions {
		v = strings.TrimPrefix(v, "v")
		if v == "1" || strings.HasPrefix(v, "1.") {
			return true
		}
	}
	return false
}

// validDriverName rejects names that would escape the plugin directories.
func validDriverName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return fmt.Errorf("invalid CSI driver name %q", name)
	}
	return nil
}
