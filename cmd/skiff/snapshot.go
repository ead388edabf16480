package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skiff-dev/skiff/internal/storage"
)

const snapshotUsage = "usage: skiff etcd-snapshot save --data-dir DIR FILE | skiff etcd-snapshot restore FILE --data-dir NEWDIR"

// runEtcdSnapshot backs up the embedded etcd of a running server, or
// restores a backup into a new data dir for `skiff server --data-dir`.
func runEtcdSnapshot(args []string) error {
	if len(args) == 0 {
		return errors.New(snapshotUsage)
	}
	fs := flag.NewFlagSet("etcd-snapshot "+args[0], flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/skiff/server", "data dir of the server (for `skiff up`: DIR/server)")
	// Accept the flag after the file too, as the usage line writes it.
	var files []string
	rest := args[1:]
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) != 1 {
		return errors.New(snapshotUsage)
	}
	ctx, stop := signalContext()
	defer stop()
	switch args[0] {
	case "save":
		dir := etcdDir(*dataDir)
		if err := storage.SaveSnapshot(ctx, dir, files[0]); err != nil {
			return err
		}
		fmt.Println("snapshot saved to", files[0])
		return nil
	case "restore":
		if _, err := os.Stat(files[0]); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		n, err := storage.RestoreSnapshot(ctx, files[0], filepath.Join(*dataDir, "etcd"))
		if err != nil {
			return err
		}
		fmt.Printf("restored %d keys into %s; start it with: skiff server --data-dir %s\n", n, *dataDir, *dataDir)
		return nil
	}
	return errors.New(snapshotUsage)
}

// etcdDir accepts the data dir of `skiff server` (DIR/etcd) or of
// `skiff up` (DIR/server/etcd).
func etcdDir(dataDir string) string {
	up := filepath.Join(dataDir, "server", "etcd")
	if _, err := os.Stat(up); err == nil {
		return up
	}
	return filepath.Join(dataDir, "etcd")
}
