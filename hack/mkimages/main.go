// Command mkimages builds the two images a Skiff node needs without a
// registry: the pod sandbox (a static Go pause binary) and busybox (Debian's
// busybox-static with a link per applet), and the end-to-end suite's own
// images: its in-cluster API client (test/images/inclusterclient), its
// admission webhook (test/images/webhook) and its controller-runtime
// operator (test/images/operator, a module of its own) and its CSI driver,
// registrar and upstream external-attacher and external-provisioner
// (test/images/csi, another module of its own). Each is written as a
// one-layer docker-archive, the format `ctr images import` and `skiff images import`
// take. The archives are deterministic: same inputs, same bytes.
//
//	go run ./hack/mkimages -out bin/images
//
// With -conformance it also writes the images upstream's conformance suite
// runs (conformance.go), from an agnhost binary built beforehand:
//
//	go run ./hack/mkimages -out bin/conformance/images -conformance -agnhost bin/upstream/agnhost
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// epoch is every file's mtime, for reproducible archives.
var epoch = time.Unix(0, 0).UTC()

type entry struct {
	name  string // path inside the image, no leading slash
	mode  int64
	data  []byte
	link  string // symlink target
	isDir bool
	uid   int
	gid   int
}

type image struct {
	tags       []string
	entrypoint []string
	cmd        []string
	env        []string
	entries    []entry
}

func main() {
	out := flag.String("out", "bin/images", "output directory")
	busybox := flag.String("busybox", "/bin/busybox", "a static busybox binary (Debian: busybox-static)")
	conformance := flag.Bool("conformance", false, "also write the conformance suite's images (needs -agnhost)")
	agnhost := flag.String("agnhost", "bin/upstream/agnhost", "a static agnhost binary, for -conformance")
	nonewprivs := flag.String("nonewprivs", "bin/upstream/nonewprivs", "a static nonewprivs binary (k8s.io/kubernetes/test/images/nonewprivs), for -conformance")
	sampleAPIServer := flag.String("sample-apiserver", "bin/upstream/sample-apiserver", "a static sample-apiserver binary (k8s.io/sample-apiserver), for -conformance")
	etcd := flag.String("etcd", "bin/upstream/etcd", "a static etcd binary (go.etcd.io/etcd/server/v3), for -conformance")
	flag.Parse()
	if err := run(*out, *busybox, *conformance, upstreamBinaries{agnhost: *agnhost, nonewprivs: *nonewprivs, sampleAPIServer: *sampleAPIServer, etcd: *etcd}); err != nil {
		fmt.Fprintln(os.Stderr, "mkimages:", err)
		os.Exit(1)
	}
}

func run(out, busyboxPath string, conformance bool, upstream upstreamBinaries) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	pause, err := buildStatic("./hack/pause")
	if err != nil {
		return err
	}
	pauseTags := []string{"registry.k8s.io/pause:3.9", "skiff.local/pause:latest"}
	if conformance {
		pauseTags = append(pauseTags, e2ePause)
	}
	if err := write(filepath.Join(out, "pause.tar"), image{
		tags:       pauseTags,
		entrypoint: []string{"/pause"},
		entries:    []entry{{name: "pause", mode: 0o755, data: pause}},
	}); err != nil {
		return err
	}
	bb, err := busyboxImage(busyboxPath)
	if err != nil {
		return err
	}
	if err := write(filepath.Join(out, "busybox.tar"), bb); err != nil {
		return err
	}
	if err := writeTestImages(out); err != nil {
		return err
	}
	if !conformance {
		return nil
	}
	return conformanceImages(out, upstream, bb)
}

// testImages are the end-to-end suite's images: one static Go binary each,
// tagged skiff.test/<name>:latest. dir is the module to build in ("" for
// Skiff's own), pkg the command's package within it.
var testImages = []struct{ name, dir, pkg string }{
	{"inclusterclient", "", "./test/images/inclusterclient"},
	{"webhook", "", "./test/images/webhook"},
	// Its own module, so controller-runtime never becomes Skiff's dependency.
	{"operator", "test/images/operator", "."},
	// A CSI driver, a stand-in for node-driver-registrar and upstream's
	// external-attacher and external-provisioner (pinned in that module's
	// tools.go).
	{"csi-testdriver", "test/images/csi", "./cmd/testdriver"},
	{"csi-registrar", "test/images/csi", "./cmd/registrar"},
	{"csi-attacher", "test/images/csi", "github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher"},
	{"csi-provisioner", "test/images/csi", "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"},
}

func writeTestImages(out string) error {
	for _, ti := range testImages {
		bin, err := buildStaticIn(ti.dir, ti.pkg)
		if err != nil {
			return err
		}
		if err := write(filepath.Join(out, ti.name+".tar"), image{
			tags:       []string{"skiff.test/" + ti.name + ":latest"},
			entrypoint: []string{"/" + ti.name},
			entries:    []entry{{name: ti.name, mode: 0o755, data: bin}},
		}); err != nil {
			return err
		}
	}
	return nil
}

// buildStatic compiles the Go command pkg (relative to the module root) as
// a static, reproducible binary: no cgo, no paths, no symbols.
func buildStatic(pkg string) ([]byte, error) { return buildStaticIn("", pkg) }

// buildStaticIn is buildStatic for a package of the module in dir.
func buildStaticIn(moduleDir, pkg string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "skiff-mkimages")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "cmd")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build %s: %w", pkg, err)
	}
	return os.ReadFile(bin)
}

func busyboxImage(path string) (image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return image{}, fmt.Errorf("%w (install busybox-static)", err)
	}
	list, err := exec.Command(path, "--list-full").Output()
	if err != nil {
		return image{}, fmt.Errorf("%s --list-full: %w", path, err)
	}
	img := image{
		tags: []string{"docker.io/library/busybox:latest", "docker.io/library/busybox:1.36"},
		cmd:  []string{"sh"},
		env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}
	dirs := map[string]bool{"bin": true, "etc": true, "root": true, "tmp": true, "var": true, "var/www": true, "home": true, "usr": true}
	img.entries = append(img.entries, entry{name: "bin/busybox", mode: 0o755, data: bin})
	for _, applet := range strings.Fields(string(list)) {
		if applet == "bin/busybox" {
			continue
		}
		dirs[filepath.Dir(applet)] = true
		for d := filepath.Dir(applet); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
		img.entries = append(img.entries, entry{name: applet, link: "/bin/busybox"})
	}
	for d := range dirs {
		mode := int64(0o755)
		switch d {
		case "tmp":
			mode = 0o1777
		case "root":
			mode = 0o700
		}
		img.entries = append(img.entries, entry{name: d, mode: mode, isDir: true})
	}
	img.entries = append(img.entries,
		entry{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		entry{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\n")},
		entry{name: "var/www/index.html", mode: 0o644, data: []byte("busybox httpd\n")},
	)
	return img, nil
}

// write renders img as a docker-archive: the layer tar, the image config
// and manifest.json naming the tags.
func write(path string, img image) error {
	layer, err := layerTar(img.entries)
	if err != nil {
		return err
	}
	diffID := "sha256:" + digest(layer)
	config := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": img.entrypoint,
			"Cmd":        img.cmd,
			"Env":        img.env,
			"WorkingDir": "/",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]string{{"created": epoch.Format(time.RFC3339), "created_by": "skiff hack/mkimages"}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return err
	}
	configName := digest(configJSON) + ".json"
	layerName := digest(layer) + "/layer.tar"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": img.tags, "Layers": []string{layerName}}})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, configJSON}, {layerName, layer}, {"manifest.json", manifest}} {
		if strings.Contains(f.name, "/") {
			if err := tw.WriteHeader(&tar.Header{Name: filepath.Dir(f.name) + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, buf.Bytes()) {
		return nil // unchanged: keep the mtime, so imports are skipped
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func layerTar(entries []entry) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Uid: e.uid, Gid: e.gid, Format: tar.FormatPAX}
		switch {
		case e.isDir:
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if len(e.data) > 0 {
			if _, err := io.Copy(tw, bytes.NewReader(e.data)); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
