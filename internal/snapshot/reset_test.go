package snapshot

import (
	"context"
	"path/filepath"
	"testing"
)

// TestResetEmbedded resets an embedded etcd in place, from its own data
// and from a snapshot: keys and their revisions survive, the old data is
// kept aside, and the cluster id changes.
func TestResetEmbedded(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "etcd")
	e, stop := startStoppableEtcd(t, dir)
	first, err := e.Client.Put(ctx, "/registry/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	before, err := Save(ctx, e.Client, file, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/registry/b", "after the snapshot"); err != nil {
		t.Fatal(err)
	}
	stop()

	check := func(wantB bool) string {
		t.Helper()
		e, stop := startStoppableEtcd(t, dir)
		defer stop()
		a, err := e.Client.Get(ctx, "/registry/a")
		if err != nil || len(a.Kvs) != 1 || a.Kvs[0].ModRevision != first.Header.Revision {
			t.Fatalf("after reset: /registry/a = %v, %v", a, err)
		}
		b, err := e.Client.Get(ctx, "/registry/b")
		if err != nil || (len(b.Kvs) == 1) != wantB {
			t.Fatalf("after reset: /registry/b = %v, %v (want present: %v)", b, err, wantB)
		}
		m, err := e.Client.MemberList(ctx)
		if err != nil || len(m.Members) != 1 {
			t.Fatalf("members %v %v", m, err)
		}
		return m.Header.String()
	}

	// From its own data: everything stays.
	res, err := ResetEmbedded(ctx, dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous == "" || !hasData(res.Previous) {
		t.Errorf("old data not kept: %+v", res)
	}
	check(true)

	// From the snapshot: back to its state.
	if _, err := ResetEmbedded(ctx, dir, file, nil); err != nil {
		t.Fatal(err)
	}
	check(false)
	if before.ClusterID == "" {
		t.Error("no cluster id in the metadata")
	}

	// A bad restore path leaves the data as it was.
	if _, err := ResetEmbedded(ctx, dir, filepath.Join(t.TempDir(), "missing.db"), nil); err == nil {
		t.Error("reset from a missing snapshot succeeded")
	}
	check(false)
}
