package storage

import (
	"fmt"
	"strings"

	"github.com/skiff-dev/skiff/internal/storage/encryption"
)

// StoreOption adjusts a Store.
type StoreOption func(*Store)

// WithEncryption encrypts values at rest as cfg says (nil: nothing is
// encrypted). Store is the single choke point: every value written goes
// through toStorage and every value read, by the Store or by a Cache's
// watch, through fromStorage, so the layers above only ever see plain
// protobuf.
func WithEncryption(cfg *encryption.Config) StoreOption {
	return func(s *Store) { s.enc = cfg }
}

// resourceOf returns the group and resource an etcd key belongs to: keys
// are /registry/<resource>/... for the core group and
// /registry/<resource>.<group>/... otherwise.
func resourceOf(key string) (group, resource string, ok bool) {
	rest, ok := strings.CutPrefix(key, "/registry/")
	if !ok {
		return "", "", false
	}
	seg, _, ok := strings.Cut(rest, "/")
	if !ok || seg == "" {
		return "", "", false
	}
	resource, group, _ = strings.Cut(seg, ".")
	return group, resource, true
}

func (s *Store) transformer(key string) encryption.Transformer {
	if s.enc == nil {
		return nil
	}
	group, resource, ok := resourceOf(key)
	if !ok {
		return nil
	}
	return s.enc.ForResource(group, resource)
}

// toStorage turns the value about to be written under key into what etcd
// holds.
func (s *Store) toStorage(key string, value []byte) ([]byte, error) {
	t := s.transformer(key)
	if t == nil {
		return value, nil
	}
	return t.TransformToStorage(key, value)
}

// fromStorage turns a value etcd holds under key back into the stored
// object, and says whether it should be rewritten with the current key.
func (s *Store) fromStorage(key string, value []byte) ([]byte, bool, error) {
	t := s.transformer(key)
	if t == nil {
		return value, false, nil
	}
	out, stale, err := t.TransformFromStorage(key, value)
	if err != nil {
		return nil, false, fmt.Errorf("read %s from storage: %w", key, err)
	}
	return out, stale, nil
}

// fromStorageKV is fromStorage for a KV read from etcd.
func (s *Store) fromStorageKV(kv KV) (KV, error) {
	v, stale, err := s.fromStorage(kv.Key, kv.Value)
	if err != nil {
		return KV{}, err
	}
	kv.Value, kv.Stale = v, stale
	return kv, nil
}
