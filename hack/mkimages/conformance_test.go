package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWithParents(t *testing.T) {
	base := []entry{
		{name: "bin", isDir: true},
		{name: "bin/sh", link: "/bin/busybox"},
	}
	got := withParents(clone(base),
		entry{name: "usr/lib/x/libc.so", data: []byte("c")},
		entry{name: "bin/sh", data: []byte("real sh")},
	)
	names := map[string]entry{}
	for _, e := range got {
		if _, dup := names[e.name]; dup {
			t.Errorf("%s appears twice", e.name)
		}
		names[e.name] = e
	}
	for _, d := range []string{"usr", "usr/lib", "usr/lib/x"} {
		if !names[d].isDir {
			t.Errorf("parent %s missing", d)
		}
	}
	if e := names["bin/sh"]; e.link != "" || string(e.data) != "real sh" {
		t.Errorf("bin/sh not replaced: %+v", e)
	}
	if base[1].link != "/bin/busybox" {
		t.Error("withParents changed the entries it was cloned from")
	}
}

// TestConformanceImages checks the images the suite runs carry the names
// e2e.test v1.37.2 expects and what its specs exec in them.
func TestConformanceImages(t *testing.T) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/curl", "/usr/bin/dig", "/usr/bin/nc", "/bin/dash", "/usr/bin/getent"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not installed", p)
		}
	}
	dir := t.TempDir()
	t.Chdir("../..") // mkimages builds hack/e2esh from the module root, as `make images` runs it
	agnhost := filepath.Join(dir, "agnhost")
	if err := os.WriteFile(agnhost, []byte("fake agnhost"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("fake "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nnp := filepath.Join(dir, "nnp")
	if err := os.WriteFile(nnp, []byte("fake nnp"), 0o755); err != nil {
		t.Fatal(err)
	}
	sample, etcd := filepath.Join(dir, "sample-apiserver"), filepath.Join(dir, "etcd")
	for _, f := range []string{sample, etcd} {
		if err := os.WriteFile(f, []byte("fake "+filepath.Base(f)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := busyboxImage("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := conformanceImages(dir, upstreamBinaries{agnhost: agnhost, nonewprivs: nnp, sampleAPIServer: sample, etcd: etcd}, bb); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file  string
		tags  []string
		files []string // regular files or symlinks the layer must hold
		body  map[string]string
	}{
		{"agnhost.tar", []string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1", "registry.k8s.io/e2e-test-images/agnhost:2.55"},
			[]string{"agnhost", "agnhost-2", "bin/sh", "usr/bin/curl", "usr/bin/dig", "usr/bin/getent", "etc/nsswitch.conf", "lib64/ld-linux-x86-64.so.2"},
			map[string]string{"agnhost": "fake agnhost", "localhost.crt": "fake localhost.crt", "localhost.key": "fake localhost.key", "usr/bin/nc": string(mustRead(t, "/usr/bin/nc")), "bin/sh": "dash"}},
		{"e2e-busybox.tar", []string{"registry.k8s.io/e2e-test-images/busybox:1.37.0-2"},
			[]string{"bin/busybox", "usr/bin/env", "bin/env", "bin/sysctl", "bin/sh"}, nil},
		{"sample-apiserver.tar", []string{"registry.k8s.io/e2e-test-images/sample-apiserver:1.29.2"},
			[]string{"bin/sh"}, map[string]string{"sample-apiserver": "fake sample-apiserver"}},
		{"etcd.tar", []string{"registry.k8s.io/etcd:3.7.0-0"},
			[]string{"bin/sh"}, map[string]string{"usr/local/bin/etcd": "fake etcd"}},
		{"glibc-dns-testing.tar", []string{"registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"},
			[]string{"bin/sh", "usr/bin/dig", "usr/bin/getent"}, map[string]string{"etc/nsswitch.conf": "hosts: files dns\n"}},
		{"nginx.tar", []string{"registry.k8s.io/e2e-test-images/nginx:1.27.0-2", "registry.k8s.io/e2e-test-images/nginx:1.28.0-2"},
			[]string{"bin/sh", "www/index.html"}, nil},
		{"nonewprivs.tar", []string{"registry.k8s.io/e2e-test-images/nonewprivs:1.4"},
			[]string{"bin/sh"}, map[string]string{"usr/local/bin/nnp": "fake nnp"}},
		{"nautilus.tar", []string{"registry.k8s.io/e2e-test-images/nautilus:1.8"},
			[]string{"www/data.json"}, map[string]string{"www/data.json": `{"image": "nautilus.jpg"}` + "\n"}},
	} {
		tags, layer := readArchive(t, filepath.Join(dir, tc.file))
		if !slices.Equal(tags, tc.tags) {
			t.Errorf("%s: tags %v, want %v", tc.file, tags, tc.tags)
		}
		for _, f := range tc.files {
			if _, ok := layer[f]; !ok {
				t.Errorf("%s: no %s in the layer", tc.file, f)
			}
		}
		for f, want := range tc.body {
			if got := layer[f]; got != want {
				t.Errorf("%s: %s holds %q, want %q", tc.file, f, got, want)
			}
		}
	}
}

// readArchive returns a docker-archive's tags and its one layer's files
// (a symlink's content is its target).
func readArchive(t *testing.T, path string) ([]string, map[string]string) {
	t.Helper()
	outer := untar(t, mustRead(t, path))
	var manifest []struct {
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal([]byte(outer["manifest.json"]), &manifest); err != nil || len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		t.Fatalf("%s: manifest %v %+v", path, err, manifest)
	}
	return manifest[0].RepoTags, untar(t, []byte(outer[manifest[0].Layers[0]]))
}

func untar(t *testing.T, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			files[h.Name] = h.Linkname
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = string(data)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
