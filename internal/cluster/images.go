package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// importImages loads every *.tar archive of dir into the containerd at
// socket (namespace k8s.io, where the CRI plugin looks), skipping archives
// already imported unchanged: a marker per archive records its digest.
func importImages(ctx context.Context, socket, dir string, log *slog.Logger) error {
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil || len(archives) == 0 {
		return err
	}
	markers := filepath.Join(filepath.Dir(socket), "imported")
	if err := os.MkdirAll(markers, 0o755); err != nil {
		return err
	}
	for _, archive := range archives {
		sum, err := fileDigest(archive)
		if err != nil {
			return err
		}
		marker := filepath.Join(markers, filepath.Base(archive)+".sha256")
		if prev, err := os.ReadFile(marker); err == nil && string(prev) == sum {
			continue
		}
		if err := ImportImage(ctx, socket, archive); err != nil {
			return err
		}
		log.Info("image archive imported", "archive", archive)
		if err := os.WriteFile(marker, []byte(sum), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ImportImage loads one docker-archive or OCI archive into containerd's
// k8s.io namespace with ctr, which ships with containerd.
func ImportImage(ctx context.Context, socket, archive string) error {
	if _, err := os.Stat(archive); err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		return fmt.Errorf("ctr not found (it comes with containerd: apt-get install containerd): %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ctr, "--address", socket, "--namespace", "k8s.io", "images", "import", "--all-platforms", archive)
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("import %s: %v: %s", archive, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
