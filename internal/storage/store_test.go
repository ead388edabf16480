package storage

import (
	"context"
	"errors"
	"testing"
)

func TestUpdateWithMovesReservationsAtomically(t *testing.T) {
	ctx := context.Background()
	s := startStore(t)
	rev := mustCreate(t, s, "/registry/things/a", "v1")
	mustCreate(t, s, "/registry/ranges/old", "a")
	mustCreate(t, s, "/registry/ranges/taken", "b")

	// A reservation someone else holds: nothing changes.
	_, _, taken, err := s.UpdateWith(ctx, "/registry/things/a", []byte("v2"), rev,
		[]KV{{Key: "/registry/ranges/new", Value: []byte("a")}, {Key: "/registry/ranges/taken", Value: []byte("a")}},
		[]string{"/registry/ranges/old"})
	if !errors.Is(err, ErrExists) || taken != "/registry/ranges/taken" {
		t.Fatalf("taken reservation: key %q err %v, want /registry/ranges/taken ErrExists", taken, err)
	}
	for key, want := range map[string]string{"/registry/things/a": "v1", "/registry/ranges/old": "a"} {
		if kv, err := s.Get(ctx, key); err != nil || string(kv.Value) != want {
			t.Errorf("%s after a refused update: %q %v, want %q", key, kv.Value, err, want)
		}
	}
	if _, err := s.Get(ctx, "/registry/ranges/new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused update created a reservation: %v", err)
	}

	// A stale revision is a conflict carrying the current value.
	_, cur, _, err := s.UpdateWith(ctx, "/registry/things/a", []byte("v2"), rev-1, nil, nil)
	if !errors.Is(err, ErrConflict) || string(cur.Value) != "v1" {
		t.Fatalf("stale revision: %q %v, want ErrConflict with v1", cur.Value, err)
	}

	// Success: the object, the new reservation and the released one together.
	if _, _, _, err := s.UpdateWith(ctx, "/registry/things/a", []byte("v2"), rev,
		[]KV{{Key: "/registry/ranges/new", Value: []byte("a")}}, []string{"/registry/ranges/old"}); err != nil {
		t.Fatal(err)
	}
	if kv, err := s.Get(ctx, "/registry/ranges/new"); err != nil || string(kv.Value) != "a" {
		t.Errorf("new reservation: %q %v", kv.Value, err)
	}
	if _, err := s.Get(ctx, "/registry/ranges/old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old reservation still held: %v", err)
	}
}

func TestListPageAtRevisionReportsThatRevision(t *testing.T) {
	ctx := context.Background()
	s := startStore(t)
	for _, k := range []string{"a", "b", "c"} {
		mustCreate(t, s, "/registry/things/"+k, "v")
	}
	first, rev, more, err := s.ListPage(ctx, "/registry/things/", "", 0, 2)
	if err != nil || !more || len(first) != 2 {
		t.Fatalf("first page: %d items, more %v, err %v", len(first), more, err)
	}
	// Writes after the snapshot move etcd's revision on.
	mustCreate(t, s, "/registry/things/d", "v")
	mustCreate(t, s, "/registry/other/x", "v")

	rest, got, more, err := s.ListPage(ctx, "/registry/things/", first[1].Key+"\x00", rev, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got != rev {
		t.Errorf("second page revision %d, want the snapshot's %d", got, rev)
	}
	if more || len(rest) != 1 || rest[0].Key != "/registry/things/c" {
		t.Errorf("second page at the snapshot: %v (more %v), want only /registry/things/c", rest, more)
	}
}
