package cluster

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeTar writes an archive of the named files, each preceded by a layer
// blob, as image archives put them.
func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name, body string) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	add("blobs/layer.tar", "not json: skipped")
	for name, body := range files {
		add(name, body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestArchiveImageNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"docker archive", map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["registry.k8s.io/pause:3.9","skiff.local/pause:latest"]},{"RepoTags":["busybox:1.36"]}]`},
			[]string{"registry.k8s.io/pause:3.9", "skiff.local/pause:latest", "busybox:1.36"}},
		{"OCI layout", map[string]string{"./index.json": `{"manifests":[
			{"annotations":{"io.containerd.image.name":"example.test/a:1","org.opencontainers.image.ref.name":"1"}},
			{"annotations":{"org.opencontainers.image.ref.name":"example.test/b:2"}},
			{"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}`},
			[]string{"example.test/a:1", "example.test/b:2"}},
		{"no names", map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := archiveImageNames(writeTar(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("names %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := archiveImageNames(writeTar(t, map[string]string{"manifest.json": "{"})); err == nil {
		t.Error("a corrupt manifest.json was not reported")
	}
}

func TestNormalizeImageName(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"docker.io/busybox:1.36":          "docker.io/library/busybox:1.36",
		"library/nginx":                   "docker.io/library/nginx:latest",
		"registry.k8s.io/pause:3.9":       "registry.k8s.io/pause:3.9",
		"localhost/app":                   "localhost/app:latest",
		"localhost:5000/app:1":            "localhost:5000/app:1",
		"skiff.local/pause":               "skiff.local/pause:latest",
		"example.test/a/b@sha256:abcd":    "example.test/a/b@sha256:abcd",
		"registry.k8s.io/e2e/agnhost:2.5": "registry.k8s.io/e2e/agnhost:2.5",
	} {
		if got := normalizeImageName(in); got != want {
			t.Errorf("normalizeImageName(%q) = %q, want %q", in, got, want)
		}
	}
}
