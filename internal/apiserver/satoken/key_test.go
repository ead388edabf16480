package satoken

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyCreatesOnceAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], _ = KeyID(&k.PublicKey)
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent creators got different keys: %v", ids)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "sa.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("sa.key: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sa.pub")); err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := KeyID(&again.PublicKey); id != ids[0] {
		t.Fatal("key not reused")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestLoadOrCreateKeyRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("garbage key accepted")
	}
}
