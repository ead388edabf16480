package csi

import (
	"context"
	"fmt"
	"sync"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// driver is a registered CSI driver and the connection to its endpoint.
type driver struct {
	name     string
	endpoint string // the CSI socket
	socket   string // the registration socket it came from
	conn     *grpc.ClientConn
	node     csipb.NodeClient

	capsMu sync.Mutex
	caps   map[csipb.NodeServiceCapability_RPC_Type]bool // nil until asked
	// pluginCaps are the identity service's plugin capabilities, nil
	// until asked.
	pluginCaps map[csipb.PluginCapability_Service_Type]bool
	// controllerCaps are the controller service's capabilities, nil
	// until asked.
	controllerCaps map[csipb.ControllerServiceCapability_RPC_Type]bool
}

func dialDriver(name, endpoint, socket string) (*driver, error) {
	conn, err := dialUnix(endpoint)
	if err != nil {
		return nil, fmt.Errorf("csi driver %s: %w", name, err)
	}
	return &driver{name: name, endpoint: endpoint, socket: socket, conn: conn, node: csipb.NewNodeClient(conn)}, nil
}

func dialUnix(path string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// capable says whether the driver's node service offers the capability;
// the answer is cached once the driver gave one.
func (d *driver) capable(ctx context.Context, c csipb.NodeServiceCapability_RPC_Type) (bool, error) {
	d.capsMu.Lock()
	defer d.capsMu.Unlock()
	if d.caps == nil {
		resp, err := d.node.NodeGetCapabilities(ctx, &csipb.NodeGetCapabilitiesRequest{})
		if err != nil {
			return false, fmt.Errorf("NodeGetCapabilities: %w", err)
		}
		d.caps = map[csipb.NodeServiceCapability_RPC_Type]bool{}
		for _, c := range resp.GetCapabilities() {
			d.caps[c.GetRpc().GetType()] = true
		}
	}
	return d.caps[c], nil
}

// registry maps driver names to registered drivers.
type registry struct {
	mu      sync.RWMutex
	drivers map[string]*driver
}

func newRegistry() *registry { return &registry{drivers: map[string]*driver{}} }

func (r *registry) get(name string) (*driver, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.drivers[name]
	if !ok {
		// upstream's wording, which users search for
		return nil, fmt.Errorf("driver name %s not found in the list of registered CSI drivers", name)
	}
	return d, nil
}

// add records d, replacing (and closing) an earlier registration of the
// same name.
func (r *registry) add(d *driver) {
	r.mu.Lock()
	old := r.drivers[d.name]
	r.drivers[d.name] = d
	r.mu.Unlock()
	if old != nil && old != d {
		old.conn.Close()
	}
}

// remove drops the driver if it is still the registration from socket,
// and says whether it did.
func (r *registry) remove(name, socket string) bool {
	r.mu.Lock()
	d, ok := r.drivers[name]
	if ok && d.socket == socket {
		delete(r.drivers, name)
	}
	r.mu.Unlock()
	if !ok || d.socket != socket {
		return false
	}
	d.conn.Close()
	return true
}

func (r *registry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, d := range r.drivers {
		d.conn.Close()
		delete(r.drivers, name)
	}
}

// Registered lists the names of the registered drivers.
func (m *Manager) Registered() []string {
	m.drivers.mu.RLock()
	defer m.drivers.mu.RUnlock()
	names := make([]string, 0, len(m.drivers.drivers))
	for name := range m.drivers.drivers {
		names = append(names, name)
	}
	return names
}
