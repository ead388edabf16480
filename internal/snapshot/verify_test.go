package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// savedSnapshot writes a few keys, one holding marker, and saves a
// snapshot of them.
func savedSnapshot(t *testing.T, marker string, extra int) string {
	t.Helper()
	ctx := context.Background()
	e := startEtcd(t, filepath.Join(t.TempDir(), "etcd"))
	if _, err := e.Client.Put(ctx, "/registry/configmaps/ns/marked", marker+strings.Repeat("v", 4096)); err != nil {
		t.Fatal(err)
	}
	for i := range extra {
		key := "/registry/secrets/ns/s" + string(rune('a'+i%26)) + strings.Repeat("x", i%50)
		if _, err := e.Client.Put(ctx, key, value(key, 512<<10)); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if _, err := Save(ctx, e.Client, file, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestBadSnapshotsAreRefused: a corrupt, truncated, empty or foreign file
// gives a one-line error and leaves the target as it was, with nothing
// beside it.
func TestBadSnapshotsAreRefused(t *testing.T) {
	const marker = "MARKER-0123456789"
	good := savedSnapshot(t, marker, 0)
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(raw, []byte(marker))
	if at < 0 {
		t.Fatal("marker not found in the snapshot")
	}
	flipped := bytes.Clone(raw)
	flipped[at+5] ^= 0x01

	// A bolt database that is not etcd's, checksum appended as etcd does.
	foreignDB := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(foreignDB, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	other, err := os.ReadFile(foreignDB)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(other)
	other = append(other, sum[:]...)

	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0x42}, 600)...)
	cases := []struct {
		name string
		data []byte
		want string // in the error
	}{
		{"flipped byte in a value", flipped, "corrupt"},
		{"truncated by half", raw[:len(raw)/2], "truncated"},
		{"truncated by one byte", raw[:len(raw)-1], "truncated"},
		{"checksum cut off", raw[:len(raw)-sha256.Size], "truncated"},
		{"truncated to a page boundary", append(bytes.Clone(raw[:len(raw)-sha256.Size-4096]), raw[len(raw)-sha256.Size:]...), "corrupt"},
		{"empty", nil, "empty"},
		{"PNG image", png, "not an etcd snapshot"},
		{"text file", []byte(strings.Repeat("hello, this is not a backup\n", 100)), "not an etcd snapshot"},
		{"another program's database", other, "not etcd's"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "bad.db")
			if err := os.WriteFile(file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			// An untouched fresh target, and an existing one with --force.
			for _, force := range []bool{false, true} {
				target := filepath.Join(parent, "etcd")
				if force {
					if err := os.MkdirAll(target, 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(target, "keep"), []byte("x"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				_, err := Restore(file, target, RestoreOptions{Force: force})
				if err == nil {
					t.Fatal("restore succeeded")
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
					t.Errorf("error %q: want one line containing %q", msg, tc.want)
				}
				want := []string(nil)
				if force {
					want = []string{"etcd"}
					if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
						t.Errorf("the existing target changed: %v", err)
					}
				}
				if got := listDir(t, parent); !equal(got, want) {
					t.Errorf("after the failed restore %s holds %v, want %v", parent, got, want)
				}
			}
			if _, err := Verify(file); err == nil {
				t.Error("Verify accepted the file")
			}
		})
	}
	if _, err := Verify(good); err != nil {
		t.Errorf("the good snapshot: %v", err)
	}
}

// TestRestoreOnFullDisk restores onto a tmpfs too small for the database:
// the error says so and nothing is left behind.
func TestRestoreOnFullDisk(t *testing.T) {
	file := savedSnapshot(t, "full-disk", 16) // about 8 MB
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, 0) })
	target := filepath.Join(mnt, "etcd")
	_, err := Restore(file, target, RestoreOptions{})
	if err == nil {
		t.Fatal("restore onto a full disk succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "no space left") {
		t.Errorf("error %q: want one line saying the disk is full", msg)
	}
	if got := listDir(t, mnt); len(got) != 0 {
		t.Errorf("a failed restore left %v", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
