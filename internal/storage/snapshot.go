package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// clientURLFile records, in an embedded etcd's dir, the unix:// URL of its
// client socket, for `skiff etcd-snapshot save`.
const clientURLFile = "client-url"

// SaveSnapshot writes a consistent snapshot of the running embedded etcd
// under dir to file.
func SaveSnapshot(ctx context.Context, dir, file string) error {
	raw, err := os.ReadFile(filepath.Join(dir, clientURLFile))
	if err != nil {
		return fmt.Errorf("no running embedded etcd under %s (start the server first): %w", dir, err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{strings.TrimSpace(string(raw))}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rc, err := c.Snapshot(sctx)
	if err != nil {
		return fmt.Errorf("snapshot (is the server running?): %w", err)
	}
	defer rc.Close()
	tmp := file + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(tmp, file)
}

// RestoreSnapshot loads the newest version of every key of a snapshot
// file into a fresh embedded etcd under dir. Revisions start over; every
// object comes back.
func RestoreSnapshot(ctx context.Context, file, dir string) (int, error) {
	if _, err := os.Stat(filepath.Join(dir, "member")); err == nil {
		return 0, fmt.Errorf("%s already holds etcd data; restore into a new data dir", dir)
	}
	kvs, err := readSnapshot(file)
	if err != nil {
		return 0, err
	}
	e, err := StartEmbedded(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer e.Close()
	const batch = 128 // etcd's default limit on operations per transaction
	for i := 0; i < len(kvs); i += batch {
		var ops []clientv3.Op
		for _, kv := range kvs[i:min(i+batch, len(kvs))] {
			ops = append(ops, clientv3.OpPut(string(kv.Key), string(kv.Value)))
		}
		if _, err := e.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
			return 0, fmt.Errorf("restore: %w", err)
		}
	}
	return len(kvs), nil
}

// readSnapshot reads etcd's key bucket: revision-ordered KeyValues, where
// a revision key ending in 't' is a tombstone.
func readSnapshot(file string) ([]*mvccpb.KeyValue, error) {
	db, err := bolt.Open(file, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", file, err)
	}
	defer db.Close()
	latest := map[string]*mvccpb.KeyValue{}
	var order []string
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New("not an etcd snapshot: no key bucket")
		}
		return b.ForEach(func(rev, val []byte) error {
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(val, kv); err != nil {
				return fmt.Errorf("decode key at revision %x: %w", rev, err)
			}
			k := string(kv.Key)
			if _, seen := latest[k]; !seen {
				order = append(order, k)
			}
			if len(rev) == 18 && rev[17] == 't' {
				latest[k] = nil // deleted
				return nil
			}
			latest[k] = kv
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var out []*mvccpb.KeyValue
	for _, k := range order {
		if kv := latest[k]; kv != nil {
			out = append(out, kv)
		}
	}
	return out, nil
}
