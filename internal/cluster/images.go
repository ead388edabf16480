package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// importImages loads every *.tar archive of dir into the containerd at
// socket (namespace k8s.io, where the CRI plugin looks), skipping archives
// already imported unchanged: a marker per archive records its digest. It
// returns the names the archives tag, which the kubelet pins: with no
// registry to pull them back, its image collector must keep them, as k3s
// keeps its air-gap images.
func importImages(ctx context.Context, socket, dir string, log *slog.Logger) ([]string, error) {
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil || len(archives) == 0 {
		return nil, err
	}
	markers := filepath.Join(filepath.Dir(socket), "imported")
	if err := os.MkdirAll(markers, 0o755); err != nil {
		return nil, err
	}
	present, err := storedImages(ctx, socket)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, archive := range archives {
		tags, err := archiveImageNames(archive)
		if err != nil {
			return nil, err
		}
		names = append(names, tags...)
		sum, err := fileDigest(archive)
		if err != nil {
			return nil, err
		}
		marker := filepath.Join(markers, filepath.Base(archive)+".sha256")
		if prev, err := os.ReadFile(marker); err == nil && string(prev) == sum &&
			!slices.ContainsFunc(tags, func(n string) bool { return !present[normalizeImageName(n)] }) {
			continue // imported unchanged, and no image of it removed since
		}
		if err := ImportImage(ctx, socket, archive); err != nil {
			return nil, err
		}
		log.Info("image archive imported", "archive", archive)
		if err := os.WriteFile(marker, []byte(sum), 0o644); err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// storedImages is the set of image names in containerd's k8s.io namespace.
func storedImages(ctx context.Context, socket string) (map[string]bool, error) {
	out, err := runCtr(ctx, socket, "images", "list", "--quiet")
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	names := map[string]bool{}
	for _, n := range strings.Fields(out) {
		names[n] = true
	}
	return names, nil
}

// normalizeImageName is name as containerd stores it: a Docker Hub name in
// full ("busybox" is docker.io/library/busybox) and tagged latest when it
// has neither tag nor digest.
func normalizeImageName(name string) string {
	domain, rest, found := strings.Cut(name, "/")
	switch {
	case !found:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(domain, ".:") && domain != "localhost":
		name = "docker.io/" + name
	case domain == "docker.io" && !strings.Contains(rest, "/"):
		name = "docker.io/library/" + rest
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if !strings.ContainsAny(last, ":@") {
		name += ":latest"
	}
	return name
}

// archiveImageNames are the image names an archive carries: the RepoTags of
// a docker archive's manifest.json, or the names an OCI layout's index.json
// annotates its manifests with.
func archiveImageNames(archive string) ([]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f) // skips file contents by seeking
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read image archive %s: %w", archive, err)
		}
		switch path.Clean(h.Name) {
		case "manifest.json":
			var manifests []struct{ RepoTags []string }
			if err := json.NewDecoder(tr).Decode(&manifests); err != nil {
				return nil, fmt.Errorf("image archive %s: manifest.json: %w", archive, err)
			}
			for _, m := range manifests {
				names = append(names, m.RepoTags...)
			}
		case "index.json":
			var index struct {
				Manifests []struct{ Annotations map[string]string }
			}
			if err := json.NewDecoder(tr).Decode(&index); err != nil {
				return nil, fmt.Errorf("image archive %s: index.json: %w", archive, err)
			}
			for _, m := range index.Manifests {
				if n := m.Annotations["io.containerd.image.name"]; n != "" {
					names = append(names, n)
				} else if n := m.Annotations["org.opencontainers.image.ref.name"]; strings.Contains(n, "/") {
					names = append(names, n) // a full reference, not a bare tag
				}
			}
		}
	}
}

// ImportImage loads one docker-archive or OCI archive into containerd's
// k8s.io namespace with ctr, which ships with containerd.
func ImportImage(ctx context.Context, socket, archive string) error {
	if _, err := os.Stat(archive); err != nil {
		return fmt.Errorf("image archive: %w", err)
	}
	if _, err := runCtr(ctx, socket, "images", "import", "--all-platforms", archive); err != nil {
		return fmt.Errorf("import %s: %w", archive, err)
	}
	return nil
}

// runCtr runs containerd's ctr against socket in the k8s.io namespace, where
// the CRI plugin keeps images, and returns its output.
func runCtr(ctx context.Context, socket string, args ...string) (string, error) {
	ctr, err := exec.LookPath("ctr")
	if err != nil {
		return "", fmt.Errorf("ctr not found (it comes with containerd: apt-get install containerd): %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, ctr, append([]string{"--address", socket, "--namespace", "k8s.io"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
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
