package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestEtcdSnapshotRestore saves a snapshot of a running server and
// restores it into a new data dir: every object comes back with its
// resourceVersion, and a bad snapshot is refused in one line.
func TestEtcdSnapshotRestore(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig}
	k.must("create", "namespace", "backup")
	k.must("create", "configmap", "settings", "-n", "backup", "--from-literal=color=blue")
	k.must("create", "deployment", "web", "-n", "backup", "--image=busybox", "--replicas=3")
	k.must("delete", "configmap", "kube-root-ca.crt", "-n", "backup", "--ignore-not-found")
	rv := k.must("get", "configmap", "settings", "-n", "backup", "-o", "jsonpath={.metadata.resourceVersion}")

	file := filepath.Join(t.TempDir(), "snap.db")
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "save", "--data-dir", s.dataDir, file).CombinedOutput(); err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	if _, err := os.Stat(file + ".json"); err != nil {
		t.Errorf("no metadata beside the snapshot: %v", err)
	}
	s.stop()

	// Bad files: one line, exit 1, the target untouched.
	bad := filepath.Join(t.TempDir(), "bad.db")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"truncated": raw[:len(raw)/3], "empty": nil, "text": []byte("not a snapshot\n")} {
		if err := os.WriteFile(bad, data, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(t.TempDir(), "target")
		out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", bad, "--data-dir", target).CombinedOutput()
		if err == nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || strings.Contains(string(out), "panic") {
			t.Errorf("%s snapshot: err %v, output %q: want one line and a failure", name, err, out)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("%s snapshot: a failed restore created %s", name, target)
		}
	}

	restored := t.TempDir()
	out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", restored).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", restored).CombinedOutput(); err == nil {
		t.Errorf("restoring over existing data succeeded: %s", out)
	}
	r := startServer(t, restored)
	k2 := kubectl{t: t, bin: k.bin, kubeconfig: r.kubeconfig}
	if got := k2.must("get", "configmap", "settings", "-n", "backup", "-o", "jsonpath={.data.color}"); got != "blue" {
		t.Errorf("restored configmap color = %q", got)
	}
	if got := k2.must("get", "configmap", "settings", "-n", "backup", "-o", "jsonpath={.metadata.resourceVersion}"); got != rv {
		t.Errorf("restored configmap resourceVersion = %s, was %s", got, rv)
	}
	if got := k2.must("get", "deployment", "web", "-n", "backup", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Errorf("restored deployment replicas = %q", got)
	}
	// The restored cluster keeps working: the deployment's pods are there
	// (pending, no nodes) and new objects can be made, past the old revisions.
	after := k2.must("create", "configmap", "after", "-n", "backup", "-o", "jsonpath={.metadata.resourceVersion}")
	if a, _ := strconv.ParseInt(after, 10, 64); a <= mustInt(t, rv) {
		t.Errorf("a new object's resourceVersion %s is not past the restored %s", after, rv)
	}
	if pods := k2.must("get", "pods", "-n", "backup", "-o", "name"); strings.Count(pods, "pod/") != 3 {
		t.Errorf("pods after restore:\n%s", pods)
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestEtcdSnapshotDisasterRecovery is the bar: 2,000 objects of
// mixed sizes up to 1 MB and Deployments with running pods; a snapshot
// taken while a writer keeps creating; the cluster restored in place (same
// PKI, so the node keeps its credentials): every object acknowledged at
// or before the snapshot's revision is back with the same resourceVersion,
// none after it, and the Deployments' pods run again. The node keeps its
// containers across the restart, as a node whose server is restored would:
// its kubelet must stop the pods the restored state no longer has, start
// again those it has once more, and a client watching from a revision
// after the snapshot must be told to relist (410 Gone).
func TestEtcdSnapshotDisasterRecovery(t *testing.T) {
	c := startNodeCluster(t, "--keep-containers")
	k := c.kubectl()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k.must("create", "namespace", "dr")
	for i := range 3 {
		k.must("create", "deployment", fmt.Sprintf("web%d", i), "-n", "dr", "--image=busybox", "--replicas=2", "--", "sleep", "3600")
	}

	var mu sync.Mutex
	acked := map[string]string{} // kind/name → resourceVersion
	record := func(kind, name, rv string) {
		mu.Lock()
		acked[kind+"/"+name] = rv
		mu.Unlock()
	}
	create := func(i int) error {
		size := 200 + (i*397)%(20<<10)
		switch {
		case i%200 == 0:
			size = 900 << 10
		case i%20 == 0:
			size = 100 << 10
		}
		data := strings.Repeat(string(rune('a'+i%26)), size)
		if i%3 == 0 {
			sec, err := cs.CoreV1().Secrets("dr").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%05d", i)},
				Data: map[string][]byte{"v": []byte(data)}}, metav1.CreateOptions{})
			if err == nil {
				record("secret", sec.Name, sec.ResourceVersion)
			}
			return err
		}
		cm, err := cs.CoreV1().ConfigMaps("dr").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%05d", i)},
			Data: map[string]string{"v": data}}, metav1.CreateOptions{})
		if err == nil {
			record("configmap", cm.Name, cm.ResourceVersion)
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < 2000; i += 8 {
				if err := create(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 3 {
		waitReady(t, k, fmt.Sprintf("web%d", i), 2, 120*time.Second)
	}

	// A writer keeps creating while the snapshot is taken.
	stop := make(chan struct{})
	writer := make(chan error, 1)
	go func() {
		for i := 2000; ; i++ {
			select {
			case <-stop:
				writer <- nil
				return
			default:
			}
			if err := create(i); err != nil {
				writer <- err
				return
			}
		}
	}()
	time.Sleep(time.Second)
	file := filepath.Join(t.TempDir(), "dr.db")
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "save", "--data-dir", c.dataDir, file).CombinedOutput(); err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	close(stop)
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	var meta struct{ Revision int64 }
	raw, err := os.ReadFile(file + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Revision == 0 {
		t.Fatalf("metadata %s: %v", raw, err)
	}
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "ls", "--etcd-snapshot-dir", filepath.Dir(file)).CombinedOutput(); err != nil || !strings.Contains(string(out), "dr.db") {
		t.Errorf("ls: %v\n%s", err, out)
	}

	// After the snapshot: a Deployment made (its pods must stop after the
	// restore) and one deleted (its pods must run again).
	k.must("create", "deployment", "late", "-n", "dr", "--image=busybox", "--", "sleep", "3600")
	waitReady(t, k, "late", 1, 120*time.Second)
	lateUID := strings.TrimSpace(k.must("get", "pods", "-n", "dr", "-l", "app=late", "-o", "jsonpath={.items[0].metadata.uid}"))
	k.must("delete", "deployment", "web2", "-n", "dr", "--wait=true")
	waitNoPods(t, k, "app=web2", 60*time.Second)
	// A client's position in the watch history, past the snapshot.
	seen, err := cs.CoreV1().ConfigMaps("dr").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}

	// Disaster: restore in place, then bring the cluster back.
	c.stop()
	out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", c.dataDir).CombinedOutput()
	if err == nil {
		t.Fatalf("restore over the live data dir without --force succeeded: %s", out)
	}
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", c.dataDir, "--force").CombinedOutput(); err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	c.start()
	cs, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var before, after int
	for key, rv := range acked {
		kind, name, _ := strings.Cut(key, "/")
		var got string
		var gerr error
		if kind == "secret" {
			var o *corev1.Secret
			if o, gerr = cs.CoreV1().Secrets("dr").Get(ctx, name, metav1.GetOptions{}); gerr == nil {
				got = o.ResourceVersion
			}
		} else {
			var o *corev1.ConfigMap
			if o, gerr = cs.CoreV1().ConfigMaps("dr").Get(ctx, name, metav1.GetOptions{}); gerr == nil {
				got = o.ResourceVersion
			}
		}
		if mustInt(t, rv) > meta.Revision {
			after++
			if gerr == nil {
				t.Errorf("%s, written at %s after the snapshot's revision %d, came back", key, rv, meta.Revision)
			}
			continue
		}
		before++
		if gerr != nil || got != rv {
			t.Errorf("%s: resourceVersion %q (%v), want %s", key, got, gerr, rv)
		}
	}
	if before < 2000 || after == 0 {
		t.Errorf("%d objects acknowledged before the snapshot, %d after: the writer did not overlap it", before, after)
	}
	for i := range 3 {
		waitReady(t, k, fmt.Sprintf("web%d", i), 2, 180*time.Second)
	}
	// The restored status of web2 says ready, from before its deletion: its
	// pods run again only if the node has containers for them once more.
	for _, uid := range strings.Fields(k.must("get", "pods", "-n", "dr", "-l", "app=web2", "-o", "jsonpath={.items[*].metadata.uid}")) {
		deadline := time.Now().Add(120 * time.Second)
		for strings.TrimSpace(c.ctr("containers", "list", "-q", `labels."io.kubernetes.pod.uid"==`+uid)) == "" {
			if time.Now().After(deadline) {
				t.Fatalf("pod %s of web2, deleted after the snapshot and restored, has no containers on the node", uid)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if out, err := k.run("", "get", "deployment", "late", "-n", "dr"); err == nil {
		t.Errorf("deployment late, made after the snapshot, came back:\n%s", out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := c.ctr("containers", "list", "-q", `labels."io.kubernetes.pod.uid"==`+lateUID)
		if strings.TrimSpace(left) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers of pod %s, which the restored state does not have, still exist:\n%s", lateUID, left)
		}
		time.Sleep(500 * time.Millisecond)
	}
	expectWatchExpired(t, cs, "dr", seen.ResourceVersion)
}

// expectWatchExpired checks that a watch of ConfigMaps in namespace ns from
// resourceVersion rv is refused with 410 Gone, either at once or as the
// watch's first event, as upstream does for a compacted revision.
func expectWatchExpired(t *testing.T, cs kubernetes.Interface, ns, rv string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			t.Errorf("watch from %s after the restore: %v, want 410 Gone", rv, err)
		}
		return
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		status, isStatus := ev.Object.(*metav1.Status)
		if !ok || ev.Type != watch.Error || !isStatus || status.Code != 410 {
			t.Errorf("watch from %s after the restore: first event %s %#v, want an error with code 410", rv, ev.Type, ev.Object)
		}
	case <-ctx.Done():
		t.Errorf("watch from %s after the restore: no event in 30 s, want 410 Gone", rv)
	}
}

// waitNoPods waits until namespace dr has no pods with the label selector.
func waitNoPods(t *testing.T, k kubectl, selector string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := k.run("", "get", "pods", "-n", "dr", "-l", selector, "-o", "name")
		if err == nil && strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods %s still there after %s (%v):\n%s", selector, timeout, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitReady waits until a Deployment in namespace dr has ready replicas.
func waitReady(t *testing.T, k kubectl, name string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := k.run("", "get", "deployment", name, "-n", "dr", "-o", "jsonpath={.status.readyReplicas}")
		if err == nil && strings.TrimSpace(out) == strconv.Itoa(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s: %q ready replicas after %s (%v); pods:\n%s", name, out, timeout, err,
				k.must("get", "pods", "-n", "dr", "-o", "wide"))
		}
		time.Sleep(time.Second)
	}
}

// TestThreeServerDisasterRecovery follows the README's recovery of three
// servers on an external etcd cluster that lost its data: every member is
// restored from one snapshot (`skiff etcd-snapshot restore --name ...`),
// etcd restarts on the restored dirs, and the three servers come back on
// it with what the snapshot held, resourceVersions kept, and clients that
// watched past it told to relist.
func TestThreeServerDisasterRecovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	etcd, servers := startThreeServers(t, dir)
	bin := kubectlBin(t, "1.33")
	k := func(s *server) kubectl { return kubectl{t: t, bin: bin, kubeconfig: s.kubeconfig} }
	k(servers[0]).must("create", "configmap", "kept", "--from-literal=v=1")
	rv := k(servers[1]).must("get", "configmap", "kept", "-o", "jsonpath={.metadata.resourceVersion}")
	file := filepath.Join(t.TempDir(), "three.db")
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "save", "--etcd-servers", etcd.endpoints(), file).CombinedOutput(); err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	k(servers[2]).must("create", "configmap", "lost", "--from-literal=v=2")
	cfg, err := clientcmd.BuildConfigFromFlags("", servers[0].kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	seen, err := cs.CoreV1().ConfigMaps("default").List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}

	// Disaster: everything stops and every member's data is gone.
	for _, s := range servers {
		s.stop()
	}
	etcd.stop()
	restored := memberDirs(dir, "etcd-restored")
	for i, lost := range memberDirs(dir, "etcd") {
		if err := os.RemoveAll(lost); err != nil {
			t.Fatal(err)
		}
		d := restored[i]
		out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", d, "--name", etcd.name(i),
			"--initial-advertise-peer-urls", etcd.peers[i], "--initial-cluster", etcd.initialCluster(),
			"--initial-cluster-token", "skiff-restored").CombinedOutput()
		if err != nil {
			t.Fatalf("restore member %d: %v\n%s", i, err, out)
		}
	}
	etcd.start(restored)
	for _, s := range servers {
		s.start()
	}

	for _, s := range servers {
		if got := k(s).must("get", "configmap", "kept", "-o", "jsonpath={.metadata.resourceVersion}"); got != rv {
			t.Errorf("server %s: kept has resourceVersion %s, was %s", s.dataDir, got, rv)
		}
		if out, err := k(s).run("", "get", "configmap", "lost"); err == nil {
			t.Errorf("server %s: a configmap made after the snapshot came back:\n%s", s.dataDir, out)
		}
	}
	// The restored cluster takes writes on one server that the others read.
	k(servers[1]).must("create", "configmap", "after", "--from-literal=v=3")
	if got := k(servers[2]).must("get", "configmap", "after", "-o", "jsonpath={.data.v}"); got != "3" {
		t.Errorf("a write after the recovery reads back %q on another server", got)
	}
	expectWatchExpired(t, cs, "default", seen.ResourceVersion)
}
