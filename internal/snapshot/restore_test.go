package snapshot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-dev/skiff/internal/storage"
)

// value makes a deterministic value of n bytes for key, with the key at
// its start so a test can find it in the database file.
func value(key string, n int) string {
	b := make([]byte, n)
	copy(b, "<"+key+">")
	for i := len(key) + 2; i < n; i++ {
		b[i] = byte('a' + (i*7+len(key))%26)
	}
	return string(b)
}

// mixedSize is up to 1 MB: mostly a few KB, every tenth 100 KB, every
// hundredth 1 MB, as objects of a cluster are.
func mixedSize(i int) int {
	switch {
	case i%100 == 0:
		return 1 << 20
	case i%10 == 0:
		return 100 << 10
	default:
		return 200 + (i*397)%(20<<10)
	}
}

func startEtcd(t *testing.T, dir string) *storage.Embedded {
	e, _ := startStoppableEtcd(t, dir)
	return e
}

// startStoppableEtcd also returns a stop function that tests may call
// before their cleanup does.
func startStoppableEtcd(t *testing.T, dir string) (*storage.Embedded, func()) {
	t.Helper()
	e, err := storage.StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceFunc(e.Close)
	t.Cleanup(stop)
	return e, stop
}

type ack struct {
	modRev int64
	sum    [32]byte
}

// ackLog records writes etcd acknowledged.
type ackLog struct {
	mu   sync.Mutex
	acks map[string]ack
}

func (l *ackLog) put(ctx context.Context, c *clientv3.Client, key, val string) error {
	resp, err := c.Put(ctx, key, val)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.acks[key] = ack{modRev: resp.Header.Revision, sum: sha256.Sum256([]byte(val))}
	l.mu.Unlock()
	return nil
}

// TestSaveWhileWritingThenRestore takes a snapshot of 2,000 objects of
// mixed sizes while a writer keeps writing, restores it into a new dir and
// starts etcd there: every write acknowledged at or before the snapshot's
// revision is there with its mod revision, none after it is, and watches
// from before the restore are told their revision is compacted.
func TestSaveWhileWritingThenRestore(t *testing.T) {
	ctx := context.Background()
	src := startEtcd(t, filepath.Join(t.TempDir(), "etcd"))
	log := &ackLog{acks: map[string]ack{}}

	const objects, workers = 2000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < objects; i += workers {
				key := fmt.Sprintf("/registry/configmaps/ns%d/obj%04d", i%7, i)
				if err := log.put(ctx, src.Client, key, value(key, mixedSize(i))); err != nil {
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
	// Deleted keys stay deleted; updated keys keep their last version.
	deleted := "/registry/configmaps/ns1/obj0001"
	if _, err := src.Client.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	delete(log.acks, deleted)
	log.mu.Unlock()
	if err := log.put(ctx, src.Client, "/registry/configmaps/ns2/obj0002", "updated"); err != nil {
		t.Fatal(err)
	}

	// A writer keeps creating while the snapshot is taken.
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			key := fmt.Sprintf("/registry/secrets/live/s%06d", i)
			if err := log.put(ctx, src.Client, key, value(key, 512+i%4096)); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the writer get going
	file := filepath.Join(t.TempDir(), "snap.db")
	meta, err := Save(ctx, src.Client, file, SaveOptions{SkiffVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // writes after the snapshot must not appear
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if meta.Revision <= 0 || meta.SHA256 == "" || meta.ClusterID == "" || len(meta.Members) != 1 || meta.SkiffVersion != "test" {
		t.Fatalf("metadata = %+v", meta)
	}
	onDisk, err := ReadMetadata(file)
	if err != nil || onDisk.Revision != meta.Revision || onDisk.SHA256 != meta.SHA256 {
		t.Fatalf("metadata file = %+v, %v", onDisk, err)
	}
	if st, err := os.Stat(file); err != nil || st.Size() != meta.Size {
		t.Fatalf("snapshot size %v (%v), metadata says %d", st, err, meta.Size)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Errorf("the .part file was left behind: %v", err)
	}

	target := filepath.Join(t.TempDir(), "data", "etcd")
	res, err := Restore(file, target, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != meta.Revision || res.NextRevision != meta.Revision+DefaultRevisionBump {
		t.Errorf("restore result %+v, snapshot revision %d", res, meta.Revision)
	}
	dst := startEtcd(t, target)

	log.mu.Lock()
	acks := log.acks
	log.mu.Unlock()
	var before, after int
	for key, a := range acks {
		resp, err := dst.Client.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if a.modRev > meta.Revision {
			after++
			if len(resp.Kvs) != 0 {
				t.Errorf("%s written at %d, after the snapshot's revision %d, is in the restore", key, a.modRev, meta.Revision)
			}
			continue
		}
		before++
		if len(resp.Kvs) != 1 {
			t.Errorf("%s (revision %d) is missing", key, a.modRev)
			continue
		}
		kv := resp.Kvs[0]
		if kv.ModRevision != a.modRev || sha256.Sum256(kv.Value) != a.sum {
			t.Errorf("%s: mod revision %d (want %d), value intact %v", key, kv.ModRevision, a.modRev, sha256.Sum256(kv.Value) == a.sum)
		}
	}
	if before < objects || after == 0 {
		t.Errorf("%d keys acknowledged before the snapshot and %d after: the writer did not overlap the snapshot", before, after)
	}
	if resp, _ := dst.Client.Get(ctx, deleted); len(resp.Kvs) != 0 {
		t.Error("a deleted key came back")
	}

	// New writes continue past the bump; old revisions are compacted, so a
	// client resuming a watch from before the restore relists.
	put, err := dst.Client.Put(ctx, "/registry/configmaps/ns0/after", "x")
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.Revision <= meta.Revision+DefaultRevisionBump {
		t.Errorf("first write after restore at revision %d, want past %d", put.Header.Revision, meta.Revision+DefaultRevisionBump)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	wresp := <-dst.Client.Watch(wctx, "/registry/", clientv3.WithPrefix(), clientv3.WithRev(meta.Revision))
	if wresp.CompactRevision == 0 && !errors.Is(wresp.Err(), rpctypes.ErrCompacted) {
		t.Errorf("a watch from revision %d was not told it is compacted: %+v", meta.Revision, wresp)
	}
}

// TestRestoreRefusesExistingData: only --force replaces a data dir, and it
// keeps the old one beside the new.
func TestRestoreRefusesExistingData(t *testing.T) {
	ctx := context.Background()
	src := startEtcd(t, filepath.Join(t.TempDir(), "etcd"))
	if _, err := src.Client.Put(ctx, "/registry/a", "snapshot"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if _, err := Save(ctx, src.Client, file, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "etcd")
	if _, err := Restore(file, target, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(target, "marker")
	if err := os.WriteFile(marker, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(file, target, RestoreOptions{}); err == nil {
		t.Fatal("restoring over existing data without --force succeeded")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("a refused restore changed the target: %v", err)
	}
	res, err := Restore(file, target, RestoreOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(res.Previous, "marker")); err != nil {
		t.Errorf("the replaced data was not kept at %q: %v", res.Previous, err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the target still holds the old data: %v", err)
	}
	e := startEtcd(t, target)
	if resp, err := e.Client.Get(ctx, "/registry/a"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "snapshot" {
		t.Errorf("after a forced restore: %v %v", resp, err)
	}
	// A running server's data dir is never replaced.
	if _, err := Restore(file, target, RestoreOptions{Force: true}); err == nil {
		t.Error("restoring over a running etcd succeeded")
	}
}

// TestSaveFromStoppedEtcd gives an error, not a hang or a half file.
func TestSaveFromStoppedEtcd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	e, err := storage.StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConnectEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	file := filepath.Join(t.TempDir(), "snap.db")
	if _, err := Save(context.Background(), c, file, SaveOptions{}); err != nil {
		t.Fatalf("save through the socket: %v", err)
	}
	e.Close()
	if _, err := ConnectEmbedded(dir); err == nil {
		t.Error("connecting to a stopped embedded etcd succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := Save(ctx, c, file+"2", SaveOptions{}); err == nil {
		t.Error("saving from a stopped etcd succeeded")
	}
	if _, err := os.Stat(file + "2"); !os.IsNotExist(err) {
		t.Errorf("a failed save left %s: %v", file+"2", err)
	}
}

// listDir returns the names in dir (none if it does not exist).
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
