// Package storage keeps API objects in etcd. Store is the byte-level view of
// etcd that the API server writes through; Cache is the per-resource watch
// cache that serves LIST and WATCH from memory, fed by one etcd watch.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-dev/skiff/internal/storage/encryption"
)

// Errors returned by Store. Callers map them to Kubernetes Status reasons.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("resource version conflict")
	ErrCompacted = errors.New("resource version compacted")
)

// KV is one stored value and the etcd revision that last modified it.
type KV struct {
	Key   string
	Value []byte
	Rev   int64
	// Stale says the value was read with an old encryption key (or
	// unencrypted while encryption is on): rewrite it even if unchanged.
	Stale bool
}

// Store is a thin, byte-level wrapper around an etcd v3 client.
// Revisions are etcd revisions; they become resourceVersions on the wire.
type Store struct {
	client *clientv3.Client
	enc    *encryption.Config // nil: values are stored as given
	// metrics time each etcd request (metrics.go).
	metrics *etcdMetrics
}

// NewStore wraps client.
func NewStore(client *clientv3.Client, opts ...StoreOption) *Store {
	s := &Store{client: client, metrics: newEtcdMetrics()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Client exposes the underlying etcd client (for snapshots and health checks).
func (s *Store) Client() *clientv3.Client { return s.client }

// Create stores value under key if the key does not exist yet.
func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	value, err := s.toStorage(key, value)
	if err != nil {
		return 0, err
	}
	defer s.metrics.observe("create", key, time.Now())
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("etcd create %s: %w", key, err)
	}
	if !resp.Succeeded {
		return 0, ErrExists
	}
	return resp.Header.Revision, nil
}

// Get returns the value under key.
func (s *Store) Get(ctx context.Context, key string) (KV, error) {
	start := time.Now()
	resp, err := s.client.Get(ctx, key)
	s.metrics.observe("get", key, start)
	if err != nil {
		return KV{}, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, ErrNotFound
	}
	return s.fromStorageKV(toKV(resp.Kvs[0]))
}

// Update replaces the value under key if it was last modified at rev.
// On ErrConflict it also returns the current value so callers can retry
// without another round trip.
func (s *Store) Update(ctx context.Context, key string, value []byte, rev int64) (int64, KV, error) {
	value, err := s.toStorage(key, value)
	if err != nil {
		return 0, KV{}, err
	}
	start := time.Now()
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(value))).
		Else(clientv3.OpGet(key)).
		Commit()
	s.metrics.observe("update", key, start)
	if err != nil {
		return 0, KV{}, fmt.Errorf("etcd update %s: %w", key, err)
	}
	if !resp.Succeeded {
		kv, err := s.currentFromElse(resp)
		return 0, kv, err
	}
	return resp.Header.Revision, KV{}, nil
}

// UpdateWith replaces the value under key if it was last modified at rev,
// and in the same transaction creates the keys of creates (each must be
// absent) and deletes the keys of deletes: an object and the reservations
// it gains or gives up change together. On ErrConflict it returns the
// current value of key; on ErrExists it names the first taken key.
func (s *Store) UpdateWith(ctx context.Context, key string, value []byte, rev int64, creates []KV, deletes []string) (int64, KV, string, error) {
	value, err := s.toStorage(key, value)
	if err != nil {
		return 0, KV{}, "", err
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
	ops := []clientv3.Op{clientv3.OpPut(key, string(value))}
	elses := []clientv3.Op{clientv3.OpGet(key)}
	for _, kv := range creates {
		v, err := s.toStorage(kv.Key, kv.Value)
		if err != nil {
			return 0, KV{}, "", err
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(kv.Key), "=", 0))
		ops = append(ops, clientv3.OpPut(kv.Key, string(v)))
		elses = append(elses, clientv3.OpGet(kv.Key, clientv3.WithCountOnly()))
	}
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(k))
	}
	start := time.Now()
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(elses...).Commit()
	s.metrics.observe("update", key, start)
	if err != nil {
		return 0, KV{}, "", fmt.Errorf("etcd update %s: %w", key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, KV{}, "", nil
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 0 || kvs[0].ModRevision != rev {
		kv, err := s.currentFromElse(resp)
		return 0, kv, "", err
	}
	for i, r := range resp.Responses[1:] {
		if r.GetResponseRange().GetCount() > 0 {
			return 0, KV{}, creates[i].Key, ErrExists
		}
	}
	return 0, KV{}, "", fmt.Errorf("etcd update %s: transaction failed without a conflict", key)
}

// Delete removes key if it was last modified at rev.
func (s *Store) Delete(ctx context.Context, key string, rev int64) (int64, KV, error) {
	return s.DeleteWith(ctx, key, rev, nil)
}

func (s *Store) currentFromElse(resp *clientv3.TxnResponse) (KV, error) {
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return KV{}, ErrNotFound
	}
	kv, err := s.fromStorageKV(toKV(kvs[0]))
	if err != nil {
		return KV{}, err
	}
	return kv, ErrConflict
}

// ListPage lists up to limit keys (0: all) in [start, end of prefix) at
// revision rev (0: latest). It returns the items, the revision read, and
// whether more items remain.
func (s *Store) ListPage(ctx context.Context, prefix, start string, rev, limit int64) ([]KV, int64, bool, error) {
	kvs, r, more, err := s.listPageRaw(ctx, prefix, start, rev, limit)
	if err != nil {
		return nil, 0, false, err
	}
	for i, kv := range kvs {
		if kvs[i], err = s.fromStorageKV(kv); err != nil {
			return nil, 0, false, err
		}
	}
	return kvs, r, more, nil
}

// listPageRaw is ListPage returning values as etcd holds them; the Cache
// uses it to skip (not fail on) a value it cannot read.
func (s *Store) listPageRaw(ctx context.Context, prefix, start string, rev, limit int64) ([]KV, int64, bool, error) {
	if start == "" {
		start = prefix
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	begin := time.Now()
	resp, err := s.client.Get(ctx, start, opts...)
	s.metrics.observe("list", prefix, begin)
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, 0, false, ErrCompacted
		}
		return nil, 0, false, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = toKV(kv)
	}
	if rev > 0 {
		// A read at a past revision reports that revision: etcd's header
		// carries the current one, which would move every later page (and
		// its continue token) off the first page's snapshot.
		return out, rev, resp.More, nil
	}
	return out, resp.Header.Revision, resp.More, nil
}

// CurrentRevision returns etcd's latest revision with a quorum read.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("etcd revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// Compact discards history before rev.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.client.Compact(ctx, rev)
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("etcd compact %d: %w", rev, err)
	}
	return nil
}

func toKV(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: kv.Value, Rev: kv.ModRevision}
}

// RunCompactor compacts etcd history every interval, keeping one interval
// of history so that watches can resume across short disconnects, as
// upstream's API server does. It returns when ctx ends.
func (s *Store) RunCompactor(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rev, err := s.CurrentRevision(ctx)
		if err != nil {
			log.Warn("compactor: read revision", "err", err)
			continue
		}
		if last > 0 {
			if err := s.Compact(ctx, last); err != nil {
				log.Warn("compactor", "err", err)
			}
		}
		last = rev
	}
}

// CreateAll stores every key atomically if none of them exists yet. On
// ErrExists it names the first key that was already taken, so a caller
// reserving several keys (an object and the addresses it claims) can tell
// which one collided.
func (s *Store) CreateAll(ctx context.Context, kvs []KV) (int64, string, error) {
	cmps := make([]clientv3.Cmp, len(kvs))
	puts := make([]clientv3.Op, len(kvs))
	gets := make([]clientv3.Op, len(kvs))
	for i, kv := range kvs {
		v, err := s.toStorage(kv.Key, kv.Value)
		if err != nil {
			return 0, kv.Key, err
		}
		cmps[i] = clientv3.Compare(clientv3.ModRevision(kv.Key), "=", 0)
		puts[i] = clientv3.OpPut(kv.Key, string(v))
		gets[i] = clientv3.OpGet(kv.Key, clientv3.WithCountOnly())
	}
	start := time.Now()
	resp, err := s.client.Txn(ctx).If(cmps...).Then(puts...).Else(gets...).Commit()
	s.metrics.observe("create", kvs[0].Key, start)
	if err != nil {
		return 0, "", fmt.Errorf("etcd create %s: %w", kvs[0].Key, err)
	}
	if !resp.Succeeded {
		for i, r := range resp.Responses {
			if r.GetResponseRange().GetCount() > 0 {
				return 0, kvs[i].Key, ErrExists
			}
		}
		return 0, kvs[0].Key, ErrExists
	}
	return resp.Header.Revision, "", nil
}

// DeleteWith removes key if it was last modified at rev, and with it the
// extra keys (reservations the object held), atomically.
func (s *Store) DeleteWith(ctx context.Context, key string, rev int64, extra []string) (int64, KV, error) {
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	for _, k := range extra {
		ops = append(ops, clientv3.OpDelete(k))
	}
	start := time.Now()
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(ops...).
		Else(clientv3.OpGet(key)).
		Commit()
	s.metrics.observe("delete", key, start)
	if err != nil {
		return 0, KV{}, fmt.Errorf("etcd delete %s: %w", key, err)
	}
	if !resp.Succeeded {
		kv, err := s.currentFromElse(resp)
		return 0, kv, err
	}
	return resp.Header.Revision, KV{}, nil
}
