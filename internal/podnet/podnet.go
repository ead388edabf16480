// Package podnet connects the pod networks of the nodes, host-gateway
// style: for every other node, a route to its pod CIDR via its InternalIP.
// Nodes must share a layer-2 segment (as k3s's host-gw backend assumes).
// Routes are marked with their own protocol number so only Skiff's are
// ever changed or removed.
package podnet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// routeProto tags Skiff's routes (any number iproute2 leaves unused).
const routeProto = "181"

// Config configures the route keeper.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// NodeIP is this node's address: nodes sharing it (several agents on
	// one host) reach each other's bridges directly and get no route.
	NodeIP net.IP
	Logger *slog.Logger
}

// Run keeps the routes in sync with the Nodes until ctx ends; a full
// resync runs every 30 s to repair routes changed behind its back.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("component", "podnet")
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	nodes := factory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	kick := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(informerutil.OnAnyChange(kick)); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	defer factory.Shutdown()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			if err := sync(ctx, cfg.NodeName, cfg.NodeIP, list); err != nil && ctx.Err() == nil {
				log.Warn("sync pod routes", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
		}
	}
}

// Desired routes: pod CIDR → node InternalIP for every other node.
func desired(self string, selfIP net.IP, nodes []*corev1.Node) map[string]string {
	out := map[string]string{}
	for _, n := range nodes {
		if n.Name == self || n.Spec.PodCIDR == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(n.Spec.PodCIDR); err != nil {
			continue
		}
		for _, a := range n.Status.Addresses {
			if ip := net.ParseIP(a.Address); a.Type == corev1.NodeInternalIP && ip != nil {
				if !ip.Equal(selfIP) {
					out[n.Spec.PodCIDR] = a.Address
				}
				break
			}
		}
	}
	return out
}

func sync(ctx context.Context, self string, selfIP net.IP, nodes []*corev1.Node) error {
	want := desired(self, selfIP, nodes)
	have, err := current(ctx)
	if err != nil {
		return err
	}
	for cidr, via := range want {
		if have[cidr] == via {
			continue
		}
		if out, err := exec.CommandContext(ctx, "ip", "route", "replace", cidr, "via", via, "proto", routeProto).CombinedOutput(); err != nil {
			return fmt.Errorf("route %s via %s: %v: %s", cidr, via, err, strings.TrimSpace(string(out)))
		}
	}
	for cidr := range have {
		if _, ok := want[cidr]; !ok {
			if out, err := exec.CommandContext(ctx, "ip", "route", "del", cidr, "proto", routeProto).CombinedOutput(); err != nil {
				return fmt.Errorf("delete route %s: %v: %s", cidr, err, strings.TrimSpace(string(out)))
			}
		}
	}
	return nil
}

// current lists Skiff's routes: destination → gateway.
func current(ctx context.Context) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "proto", routeProto).Output()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return parseRoutes(string(out)), nil
}

// parseRoutes reads `ip route show` lines: "10.42.1.0/24 via 192.0.2.12 dev eth0".
func parseRoutes(s string) map[string]string {
	routes := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "via" && len(f) > 0 {
				routes[f[0]] = f[i+1]
			}
		}
	}
	return routes
}
