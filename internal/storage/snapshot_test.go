package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestSnapshotSaveAndRestore(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "etcd")
	e, err := StartEmbedded(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := e.Client.Put(ctx, fmt.Sprintf("/registry/pods/ns/p%03d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Later versions win; deleted keys stay deleted.
	if _, err := e.Client.Put(ctx, "/registry/pods/ns/p000", "updated"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Delete(ctx, "/registry/pods/ns/p001"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if err := SaveSnapshot(ctx, src, file); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := SaveSnapshot(ctx, src, file+"2"); err == nil {
		t.Error("saving from a stopped etcd should fail with a message")
	}

	dst := filepath.Join(t.TempDir(), "etcd")
	n, err := RestoreSnapshot(ctx, file, dst)
	if err != nil {
		t.Fatal(err)
	}
	if n != 299 {
		t.Errorf("restored %d keys, want 299", n)
	}
	if _, err := RestoreSnapshot(ctx, file, dst); err == nil {
		t.Error("restoring over existing data should be refused")
	}
	r, err := StartEmbedded(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	resp, err := r.Client.Get(ctx, "/registry/pods/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	if len(got) != 299 || got["/registry/pods/ns/p000"] != "updated" || got["/registry/pods/ns/p299"] != "v299" {
		t.Errorf("restored %d keys; p000=%q p299=%q", len(got), got["/registry/pods/ns/p000"], got["/registry/pods/ns/p299"])
	}
	if _, ok := got["/registry/pods/ns/p001"]; ok {
		t.Error("a deleted key came back")
	}
}
