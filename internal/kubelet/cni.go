package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// cniConfigName sorts first in the conf dir, so the runtime picks it.
const cniConfigName = "10-skiff.conflist"

// writeCNIConfig writes the pod network: a bridge with host-local IPAM over
// the node's pod CIDR, and portmap for hostPorts. The runtime watches the
// directory, so the file is written to a temporary name and renamed.
func writeCNIConfig(dir, bridge, podCIDR, dataDir string) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "skiff",
		"plugins": []any{
			map[string]any{
				"type":      "bridge",
				"bridge":    bridge,
				"isGateway": true,
				// Egress is masqueraded by one rule of the service proxy for
				// the whole cluster CIDR: the plugin's per-pod iptables
				// calls serialise pod start-up, and it would also SNAT
				// pod-to-pod traffic between nodes.
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": podCIDR}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(dataDir, "cni-ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cni config: %w", err)
	}
	tmp := filepath.Join(dir, "."+cniConfigName+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("cni config: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, cniConfigName))
}
