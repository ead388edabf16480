package kubelet

import (
	"strings"
	"testing"
)

func TestMountState(t *testing.T) {
	const table = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 26 254:0 /var/lib/skiff/agent/kubelet /var/lib/skiff/agent/kubelet rw,relatime - ext4 /dev/vda rw
91 90 254:0 /var/lib/skiff/agent/kubelet /var/lib/skiff/agent/kubelet rw,relatime shared:7 - ext4 /dev/vda rw
92 26 0:50 / /data/with\040space rw master:3 - tmpfs tmpfs rw
`
	for _, tc := range []struct {
		dir             string
		isMount, shared bool
	}{
		{"/", true, false},
		{"/var/lib/skiff/agent/kubelet", true, true}, // the topmost mount counts
		{"/var/lib/skiff/agent", false, false},
		{"/data/with space", true, false}, // a slave is not shared
	} {
		isMount, shared, err := mountState(strings.NewReader(table), tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		if isMount != tc.isMount || shared != tc.shared {
			t.Errorf("%s: mount %v shared %v, want %v %v", tc.dir, isMount, shared, tc.isMount, tc.shared)
		}
	}
}
