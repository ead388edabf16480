package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Info is what Verify learns about a snapshot file.
type Info struct {
	Size     int64
	SHA256   string // hex, of the database without the checksum
	Revision int64  // the newest revision in the key bucket
}

// boltMagic is the magic number in a bolt database's meta pages, little
// endian, right after the 16-byte page header.
const (
	boltMagic       = 0xED0CDAED
	boltMagicOffset = 16
)

// etcd appends the checksum to a database whose size is a multiple of 512
// (bolt's page size is a multiple of it), so a complete snapshot's size is
// 512n + 32.
func hasChecksum(size int64) bool { return size >= 512+sha256.Size && size%512 == sha256.Size }

// Verify checks that file is a complete, uncorrupted etcd snapshot: a bolt
// database followed by its SHA-256, holding etcd's buckets. The error is
// one line saying what is wrong; Verify never panics on bad input.
func Verify(file string) (info Info, err error) {
	f, err := os.Open(file)
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("snapshot %s: %w", file, err)
	}
	if st.IsDir() {
		return Info{}, fmt.Errorf("snapshot %s is a directory, not a file", file)
	}
	size := st.Size()
	if size == 0 {
		return Info{}, fmt.Errorf("snapshot %s is empty", file)
	}
	head := make([]byte, boltMagicOffset+4)
	if _, err := io.ReadFull(f, head); err != nil || binary.LittleEndian.Uint32(head[boltMagicOffset:]) != boltMagic {
		return Info{}, fmt.Errorf("%s is not an etcd snapshot (no etcd database header)", file)
	}
	if !hasChecksum(size) {
		return Info{}, fmt.Errorf("snapshot %s is truncated or lacks its SHA-256 (size %d bytes is not a whole database plus checksum)", file, size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Info{}, fmt.Errorf("snapshot %s: %w", file, err)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return Info{}, fmt.Errorf("read snapshot %s: %w", file, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return Info{}, fmt.Errorf("read snapshot %s: %w", file, err)
	}
	got := h.Sum(nil)
	if !bytes.Equal(got, want) {
		return Info{}, fmt.Errorf("snapshot %s is corrupt: its SHA-256 does not match its contents", file)
	}
	rev, err := readRevision(file)
	if err != nil {
		return Info{}, err
	}
	return Info{Size: size, SHA256: hex.EncodeToString(got), Revision: rev}, nil
}

// readRevision opens the database read-only, checks that it has etcd's
// buckets and returns the newest revision of its key bucket. bolt may
// panic on a damaged file; that becomes an error.
func readRevision(file string) (rev int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot %s is not a readable etcd database: %v", file, r)
		}
	}()
	db, err := bolt.Open(file, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("snapshot %s is not a readable etcd database: %w", file, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{"key", "meta", "members"} {
			if tx.Bucket([]byte(name)) == nil {
				return fmt.Errorf("a database, but not etcd's (no %q bucket)", name)
			}
		}
		k, _ := tx.Bucket([]byte("key")).Cursor().Last()
		if k == nil {
			return nil // an etcd that never stored a key
		}
		if len(k) < 8 {
			return errors.New("malformed revision key")
		}
		rev = int64(binary.BigEndian.Uint64(k))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", file, err)
	}
	return rev, nil
}
