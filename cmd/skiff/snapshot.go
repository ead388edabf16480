package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-dev/skiff/internal/cluster"
	"github.com/skiff-dev/skiff/internal/snapshot"
)

const snapshotUsage = `usage:
  skiff etcd-snapshot save [--data-dir DIR | --etcd-servers URLS [--etcd-cafile F --etcd-certfile F --etcd-keyfile F]] [FILE]
  skiff etcd-snapshot restore FILE --data-dir NEWDIR [--force] [--bump-revision N]
  skiff etcd-snapshot restore FILE --data-dir ETCDDIR --name NAME --initial-advertise-peer-urls URL --initial-cluster C [--initial-cluster-token T]
  skiff etcd-snapshot ls [--data-dir DIR | --etcd-snapshot-dir DIR]
  skiff etcd-snapshot verify FILE`

// runEtcdSnapshot saves, restores, lists and verifies etcd snapshots.
func runEtcdSnapshot(args []string) error {
	if len(args) == 0 {
		return errors.New(snapshotUsage)
	}
	fs := flag.NewFlagSet("etcd-snapshot "+args[0], flag.ExitOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, snapshotUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", "/var/lib/skiff/server", "data dir of the server (for `skiff up`: DIR/server is found too)")
	etcdServers := fs.String("etcd-servers", "", "save: comma-separated URLs of an external etcd cluster instead of the server's embedded etcd")
	etcdCA := fs.String("etcd-cafile", "", "save: CA file verifying the external etcd servers' certificates")
	etcdCert := fs.String("etcd-certfile", "", "save: client certificate for the external etcd servers")
	etcdKey := fs.String("etcd-keyfile", "", "save: key of --etcd-certfile")
	snapDir := fs.String("etcd-snapshot-dir", "", "save without FILE, ls: the snapshot dir (default DIR/snapshots)")
	force := fs.Bool("force", false, "restore: replace existing etcd data (kept beside it as .old-TIME)")
	bump := fs.Uint64("bump-revision", snapshot.DefaultRevisionBump, "restore: move the revision this far past the snapshot's and mark it compacted, so clients relist")
	name := fs.String("name", "", "restore for an external etcd member: its --name (then --data-dir is that member's etcd data dir)")
	peerURL := fs.String("initial-advertise-peer-urls", "", "restore for an external etcd member: its peer URL")
	initialCluster := fs.String("initial-cluster", "", "restore for an external etcd member: every member as NAME=PEERURL,...")
	clusterToken := fs.String("initial-cluster-token", "etcd-cluster", "restore for an external etcd member: the new cluster's token")
	// Accept flags after the file too, as the usage line writes them.
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
	ctx, stop := signalContext()
	defer stop()
	dir := serverDataDir(*dataDir)
	if *snapDir == "" {
		*snapDir = filepath.Join(dir, "snapshots")
	}
	switch args[0] {
	case "save":
		if len(files) > 1 {
			return errors.New(snapshotUsage)
		}
		file := filepath.Join(*snapDir, fmt.Sprintf("on-demand-%s-%s.db", hostname(), time.Now().UTC().Format("20060102T150405Z")))
		if len(files) == 1 {
			file = files[0]
		}
		var c *clientv3.Client
		var err error
		if *etcdServers != "" {
			c, err = snapshot.ConnectExternal(strings.Split(*etcdServers, ","), *etcdCA, *etcdCert, *etcdKey)
		} else {
			c, err = snapshot.ConnectEmbedded(filepath.Join(dir, "etcd"))
		}
		if err != nil {
			return err
		}
		defer c.Close()
		meta, err := snapshot.Save(ctx, c, file, snapshot.SaveOptions{SkiffVersion: cluster.KubernetesVersion + "+skiff"})
		if err != nil {
			return err
		}
		fmt.Printf("snapshot saved to %s (revision %d, %d bytes, sha256 %s)\n", file, meta.Revision, meta.Size, meta.SHA256)
		return nil
	case "restore":
		if len(files) != 1 {
			return errors.New(snapshotUsage)
		}
		opts := snapshot.RestoreOptions{Force: *force, RevisionBump: *bump, Logger: newLogger("warn")}
		target := filepath.Join(dir, "etcd")
		if *name != "" || *peerURL != "" || *initialCluster != "" {
			opts.Member = &snapshot.ExternalMember{Name: *name, PeerURL: *peerURL, InitialCluster: *initialCluster, InitialClusterToken: *clusterToken}
			target = *dataDir
		}
		res, err := snapshot.Restore(files[0], target, opts)
		if err != nil {
			return err
		}
		fmt.Printf("restored %s (revision %d) into %s; new writes start past revision %d\n", files[0], res.Revision, res.Dir, res.NextRevision)
		if res.Previous != "" {
			fmt.Printf("the replaced data is kept at %s\n", res.Previous)
		}
		if opts.Member == nil {
			fmt.Printf("start it with: skiff server --data-dir %s\n", dir)
		}
		return nil
	case "ls", "list":
		if len(files) != 0 {
			return errors.New(snapshotUsage)
		}
		entries, err := snapshot.List(*snapDir)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tSIZE\tCREATED\tREVISION")
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\n", e.Name, e.Size, e.Time.Format(time.RFC3339), e.Revision)
		}
		return w.Flush()
	case "verify":
		if len(files) != 1 {
			return errors.New(snapshotUsage)
		}
		info, err := snapshot.Verify(files[0])
		if err != nil {
			return err
		}
		fmt.Printf("%s: etcd snapshot, revision %d, %d bytes, sha256 %s\n", files[0], info.Revision, info.Size, info.SHA256)
		return nil
	}
	return errors.New(snapshotUsage)
}

// serverDataDir accepts the data dir of `skiff server` or of `skiff up`
// (whose server lives in DIR/server).
func serverDataDir(dataDir string) string {
	up := filepath.Join(dataDir, "server")
	if _, err := os.Stat(filepath.Join(up, "etcd")); err == nil {
		return up
	}
	return dataDir
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "skiff"
	}
	return h
}

// snapshotFlags are the scheduled snapshot and cluster reset flags of `skiff
// server` and `skiff up`.
type snapshotFlags struct {
	schedule, dir, restorePath *string
	retention                  *int
	clusterReset               *bool
}

func addSnapshotFlags(fs *flag.FlagSet) snapshotFlags {
	return snapshotFlags{
		schedule: fs.String("etcd-snapshot-schedule", snapshot.DefaultSchedule,
			`cron schedule (minute hour day month weekday, local time) of etcd snapshots; "" takes none`),
		retention: fs.Int("etcd-snapshot-retention", snapshot.DefaultRetention, "scheduled etcd snapshots to keep (0: all)"),
		dir:       fs.String("etcd-snapshot-dir", "", "directory of scheduled etcd snapshots (default DIR/snapshots, for up DIR/server/snapshots)"),
		clusterReset: fs.Bool("cluster-reset", false,
			"make the embedded etcd a new single-member cluster (from --cluster-reset-restore-path if given), keeping the old data beside it, then exit"),
		restorePath: fs.String("cluster-reset-restore-path", "", "with --cluster-reset: the snapshot to restore"),
	}
}

// apply sets the flags' values in c.
func (f snapshotFlags) apply(c cluster.ServerConfig) cluster.ServerConfig {
	c.EtcdSnapshotSchedule, c.EtcdSnapshotRetention, c.EtcdSnapshotDir = *f.schedule, *f.retention, *f.dir
	return c
}

// clusterReset runs `skiff server --cluster-reset` and exits, so that a
// reset is never repeated by a restart that kept the flag.
func clusterReset(ctx context.Context, dataDir, etcdServers, restorePath string, log *slog.Logger) error {
	if etcdServers != "" {
		return errors.New("--cluster-reset resets the embedded etcd; restore an external etcd cluster with `skiff etcd-snapshot restore --name ... --initial-cluster ...` on each member (see the README)")
	}
	res, err := cluster.ClusterReset(ctx, dataDir, restorePath, log)
	if err != nil {
		return err
	}
	fmt.Printf("etcd in %s is now a new single-member cluster at revision %d (writes continue past %d)\n", res.Dir, res.Revision, res.NextRevision)
	if res.Previous != "" {
		fmt.Printf("the previous data is kept at %s\n", res.Previous)
	}
	fmt.Println("start the server again without --cluster-reset")
	return nil
}
