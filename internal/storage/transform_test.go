package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/skiff-dev/skiff/internal/storage/encryption"
)

func TestResourceOf(t *testing.T) {
	for _, tc := range []struct{ key, group, resource string }{
		{"/registry/secrets/ns/s", "", "secrets"},
		{"/registry/deployments.apps/ns/d", "apps", "deployments"},
		{"/registry/widgets.example.com/w", "example.com", "widgets"},
		{"/registry/ranges/serviceips/10.0.0.1", "", "ranges"},
	} {
		g, r, ok := resourceOf(tc.key)
		if !ok || g != tc.group || r != tc.resource {
			t.Errorf("%s: got %q %q %v", tc.key, g, r, ok)
		}
	}
	for _, key := range []string{"/other/x", "/registry/", "/registry/secrets"} {
		if _, _, ok := resourceOf(key); ok {
			t.Errorf("%s: want no resource", key)
		}
	}
}

func encConfig(t *testing.T, keys ...string) *encryption.Config {
	t.Helper()
	y := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: ['*.']\n  providers:\n  - secretbox:\n      keys:\n"
	for _, k := range keys {
		y += "      - {name: " + k + ", secret: " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(k[:1]), 32)) + "}\n"
	}
	c, err := encryption.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func raw(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	resp, err := s.client.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw %s: %v", key, err)
	}
	return resp.Kvs[0].Value
}

// Every Store path that writes encrypts, every path that reads decrypts,
// and a value read with an old key is marked stale.
func TestStoreEncryptsEveryPath(t *testing.T) {
	ctx := context.Background()
	plain := startStore(t)
	s := NewStore(plain.client, WithEncryption(encConfig(t, "a", "b")))
	const k = "/registry/things/x"
	rev, err := s.Create(ctx, k, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if r := raw(t, s, k); !bytes.HasPrefix(r, []byte("k8s:enc:secretbox:v1:a:")) {
		t.Fatalf("created value stored as %q", r)
	}
	if kv, err := s.Get(ctx, k); err != nil || string(kv.Value) != "one" || kv.Stale {
		t.Fatalf("get: %+v %v", kv, err)
	}
	if _, cur, err := s.Update(ctx, k, []byte("two"), rev+100); !errors.Is(err, ErrConflict) || string(cur.Value) != "one" {
		t.Fatalf("conflicting update: %q %v", cur.Value, err)
	}
	if _, cur, err := s.Delete(ctx, k, rev+100); !errors.Is(err, ErrConflict) || string(cur.Value) != "one" {
		t.Fatalf("conflicting delete: %q %v", cur.Value, err)
	}
	if _, _, err := s.Update(ctx, k, []byte("two"), rev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateAll(ctx, []KV{{Key: "/registry/things/y", Value: []byte("y")}, {Key: "/registry/ranges/r", Value: []byte("r")}}); err != nil {
		t.Fatal(err)
	}
	if r := raw(t, s, "/registry/things/y"); !bytes.HasPrefix(r, []byte("k8s:enc:")) {
		t.Errorf("CreateAll stored %q", r)
	}
	kvs, _, _, err := s.ListPage(ctx, "/registry/things/", "", 0, 0)
	if err != nil || len(kvs) != 2 || string(kvs[0].Value) != "two" || string(kvs[1].Value) != "y" {
		t.Fatalf("list: %+v %v", kvs, err)
	}

	// Rotated: b writes, a still reads but is stale.
	rotated := NewStore(plain.client, WithEncryption(encConfig(t, "b", "a")))
	kv, err := rotated.Get(ctx, k)
	if err != nil || string(kv.Value) != "two" || !kv.Stale {
		t.Fatalf("get after rotation: %+v %v", kv, err)
	}
	if _, _, err := rotated.Update(ctx, k, kv.Value, kv.Rev); err != nil {
		t.Fatal(err)
	}
	if r := raw(t, s, k); !bytes.HasPrefix(r, []byte("k8s:enc:secretbox:v1:b:")) {
		t.Errorf("rewritten value stored as %q", r[:24])
	}

	// Without the key: a clear error from Get and List, never a panic.
	lost := NewStore(plain.client, WithEncryption(encConfig(t, "c")))
	if _, err := lost.Get(ctx, k); err == nil || !strings.Contains(err.Error(), "k8s:enc:secretbox:v1:b") {
		t.Errorf("get without the key: %v", err)
	}
	if _, _, _, err := lost.ListPage(ctx, "/registry/things/", "", 0, 0); err == nil {
		t.Error("list without the key succeeded")
	}
}

// The watch cache decrypts what it lists and watches, and skips (rather
// than fails on) a value it cannot read.
func TestCacheDecrypts(t *testing.T) {
	ctx := context.Background()
	plain := startStore(t)
	s := NewStore(plain.client, WithEncryption(encConfig(t, "a")))
	if _, err := s.Create(ctx, "/registry/things/listed", []byte("listed")); err != nil {
		t.Fatal(err)
	}
	other := NewStore(plain.client, WithEncryption(encConfig(t, "z")))
	if _, err := other.Create(ctx, "/registry/things/unreadable", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c := startCache(t, s, 100)
	rev, err := s.Create(ctx, "/registry/things/watched", []byte("watched"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"/registry/things/listed", "/registry/things/watched"} {
		e, ok := c.Get(key)
		if !ok || e.Obj.(*testObj).value != strings.TrimPrefix(key, "/registry/things/") {
			t.Errorf("%s in cache: %v %+v", key, ok, e)
		}
	}
	if _, ok := c.Get("/registry/things/unreadable"); ok {
		t.Error("an unreadable value reached the cache")
	}
}
