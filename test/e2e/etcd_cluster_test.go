package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// etcdCluster is a three-member etcd cluster of the etcd binary on
// loopback ports, the external store several skiff servers share.
type etcdCluster struct {
	t       *testing.T
	bin     string
	clients []string // client URLs, one per member
	peers   []string // peer URLs, one per member
	cmds    []*exec.Cmd
}

// newEtcdCluster picks the members' ports; the test is skipped when etcd
// is not installed (hack/install-deps.sh installs it).
func newEtcdCluster(t *testing.T) *etcdCluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (hack/install-deps.sh installs it)")
	}
	e := &etcdCluster{t: t, bin: bin}
	for range 3 {
		e.clients = append(e.clients, "http://127.0.0.1:"+strconv.Itoa(freePort(t)))
		e.peers = append(e.peers, "http://127.0.0.1:"+strconv.Itoa(freePort(t)))
	}
	t.Cleanup(e.stop)
	return e
}

func (e *etcdCluster) name(i int) string { return fmt.Sprintf("e%d", i) }

// initialCluster is the --initial-cluster value naming every member.
func (e *etcdCluster) initialCluster() string {
	var members []string
	for i, p := range e.peers {
		members = append(members, e.name(i)+"="+p)
	}
	return strings.Join(members, ",")
}

// endpoints is the --etcd-servers value for skiff.
func (e *etcdCluster) endpoints() string { return strings.Join(e.clients, ",") }

// start runs member i on dataDirs[i]: a new cluster on empty dirs, or the
// members a restore wrote there.
func (e *etcdCluster) start(dataDirs []string) {
	e.t.Helper()
	for i, dir := range dataDirs {
		cmd := exec.Command(e.bin, "--data-dir", dir, "--name", e.name(i),
			"--listen-client-urls", e.clients[i], "--advertise-client-urls", e.clients[i],
			"--listen-peer-urls", e.peers[i], "--initial-advertise-peer-urls", e.peers[i],
			"--initial-cluster", e.initialCluster(), "--initial-cluster-state", "new")
		cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+goarch())
		cmd.Stdout, cmd.Stderr = &syncBuffer{}, &syncBuffer{}
		if err := cmd.Start(); err != nil {
			e.t.Fatal(err)
		}
		e.cmds = append(e.cmds, cmd)
	}
}

// stop kills every member and waits for it.
func (e *etcdCluster) stop() {
	for _, cmd := range e.cmds {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	e.cmds = nil
}

// memberDirs names a data dir under dir for each member: prefix0, prefix1...
func memberDirs(dir, prefix string) []string {
	return []string{filepath.Join(dir, prefix+"0"), filepath.Join(dir, prefix+"1"), filepath.Join(dir, prefix+"2")}
}

// startThreeServers starts a three-member etcd cluster with its data under
// dir and three skiff servers on it.
func startThreeServers(t *testing.T, dir string) (*etcdCluster, []*server) {
	t.Helper()
	etcd := newEtcdCluster(t)
	etcd.start(memberDirs(dir, "etcd"))
	return etcd, startServersOn(t, dir, etcd.endpoints())
}

// startServersOn starts three skiff servers under dir on the external etcd
// endpoints; they share the first one's PKI, as the servers of one cluster
// must.
func startServersOn(t *testing.T, dir, endpoints string) []*server {
	t.Helper()
	servers := []*server{startServer(t, filepath.Join(dir, "s0"), "--etcd-servers", endpoints)}
	for i := 1; i < 3; i++ {
		d := filepath.Join(dir, fmt.Sprintf("s%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-r", filepath.Join(dir, "s0", "pki"), filepath.Join(d, "pki")).CombinedOutput(); err != nil {
			t.Fatalf("copy pki: %v %s", err, out)
		}
		servers = append(servers, startServer(t, d, "--etcd-servers", endpoints))
	}
	return servers
}
