package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// The conformance suite (e2e.test v1.37.2) names its images after upstream's
// registries (k8s.io/kubernetes/test/utils/image/manifest.go). These are the
// ones its [Conformance] specs run; each is a local stand-in tagged with
// that name, so no node ever pulls.
const (
	e2eRegistry  = "registry.k8s.io/e2e-test-images/"
	e2ePause     = "registry.k8s.io/pause:3.10.2"
	e2eBusybox   = e2eRegistry + "busybox:1.37.0-2"
	e2eAgnhost   = e2eRegistry + "agnhost:2.66.1"
	e2eAgnhostV1 = e2eRegistry + "agnhost:2.55" // AgnhostPrev: StatefulSet fixtures
	e2eSampleAPI = e2eRegistry + "sample-apiserver:1.29.2"
	e2eEtcd      = "registry.k8s.io/etcd:3.7.0-0"
)

// upstreamBinaries are the suite's own test programs, built beforehand
// from the test-only module by hack/conformance.sh.
type upstreamBinaries struct {
	agnhost         string
	nonewprivs      string
	sampleAPIServer string
	etcd            string
}

// conformanceImages writes the suite's images into out, beside the base
// images (whose pause archive already carries the suite's pause tag):
//
//   - busybox: Skiff's busybox with hack/e2esh as /bin/sh, which runs
//     `sh -c env` itself (Debian's busybox 1.35 shell drops variables
//     whose names are not identifiers, upstream's 1.37 passes them on and
//     the env specs look for them) and everything else with busybox's sh.
//   - agnhost: the binary built from k8s.io/kubernetes/test/images/agnhost,
//     with busybox's applets and the host's curl, dig and nc (busybox's nc
//     has no -u), as upstream's image has a shell, curl, dig and netcat;
//     /agnhost-2 is the second entrypoint some specs name; porter's TLS
//     certificate and netexec's /uploads are where upstream's image has them. Its /bin/sh is the
//     host's dash: busybox's sh runs its own applets before PATH, so `nc`
//     in a spec's shell command would never reach /usr/bin/nc.
//   - glibc-dns-testing: busybox, dig and getent, the DNS specs' second
//     prober. agnhost carries getent too: the specs check /etc/hosts names
//     with it (busybox has none).
//   - nginx (Nginx, NginxNew): busybox httpd serving a page on port 80,
//     which is all the specs ask of it.
//   - nautilus, kitten: the update-demo images, serving /data.json on 80.
//   - nonewprivs: upstream's nnp, setuid root at /usr/local/bin/nnp.
//   - sample-apiserver and etcd: the aggregator spec's extension API
//     server (k8s.io/sample-apiserver, its entrypoint /sample-apiserver as
//     upstream's image) and the etcd it stores in (/usr/local/bin/etcd).
func conformanceImages(out string, upstream upstreamBinaries, bb image) error {
	agnhost, err := os.ReadFile(upstream.agnhost)
	if err != nil {
		return fmt.Errorf("%w (build it: go build in test/upstream, see hack/conformance.sh)", err)
	}
	// porter serves TLS with the certificate upstream's image carries in
	// its working directory; conformance.sh copies it beside agnhost.
	var porterFiles []entry
	for _, name := range []string{"localhost.crt", "localhost.key"} {
		data, err := os.ReadFile(filepath.Join(filepath.Dir(upstream.agnhost), name))
		if err != nil {
			return fmt.Errorf("%w (agnhost's porter/%s, see hack/conformance.sh)", err, name)
		}
		porterFiles = append(porterFiles, entry{name: name, mode: 0o644, data: data})
	}
	nnp, err := os.ReadFile(upstream.nonewprivs)
	if err != nil {
		return fmt.Errorf("%w (build it: go build in test/upstream, see hack/conformance.sh)", err)
	}
	// The privilege escalation specs run it as uid 1000 and read the
	// effective uid it prints: 0 only if its setuid bit took effect.
	if err := write(filepath.Join(out, "nonewprivs.tar"), image{
		tags:    []string{e2eRegistry + "nonewprivs:1.4"},
		cmd:     []string{"nnp"},
		env:     bb.env,
		entries: withParents(clone(bb.entries), entry{name: "usr/local/bin/nnp", mode: 0o4755, data: nnp}),
	}); err != nil {
		return err
	}
	for _, b := range []struct {
		file, tag, bin, path string
		entrypoint           []string
	}{
		{"sample-apiserver.tar", e2eSampleAPI, upstream.sampleAPIServer, "sample-apiserver", []string{"/sample-apiserver"}},
		{"etcd.tar", e2eEtcd, upstream.etcd, "usr/local/bin/etcd", nil},
	} {
		data, err := os.ReadFile(b.bin)
		if err != nil {
			return fmt.Errorf("%w (build it: go build in test/upstream, see hack/conformance.sh)", err)
		}
		if err := write(filepath.Join(out, b.file), image{
			tags:       []string{b.tag},
			entrypoint: b.entrypoint,
			env:        bb.env,
			entries:    withParents(clone(bb.entries), entry{name: b.path, mode: 0o755, data: data}),
		}); err != nil {
			return err
		}
	}
	var tools []entry
	for _, p := range []string{"/usr/bin/curl", "/usr/bin/dig", "/usr/bin/nc", "/bin/dash", "/usr/bin/getent"} {
		files, err := hostBinary(p)
		if err != nil {
			return fmt.Errorf("%w (install curl, bind9-dnsutils and netcat-openbsd)", err)
		}
		tools = append(tools, files...)
	}
	sh, err := buildStatic("./hack/e2esh")
	if err != nil {
		return err
	}
	if err := write(filepath.Join(out, "e2e-busybox.tar"), image{
		tags:    []string{e2eBusybox},
		cmd:     []string{"sh"},
		env:     bb.env,
		entries: withParents(clone(bb.entries), append(binLinks(bb.entries), entry{name: "bin/sh", mode: 0o755, data: sh})...),
	}); err != nil {
		return err
	}
	var resolvers []entry
	for _, p := range []string{"/usr/bin/dig", "/usr/bin/getent"} {
		files, err := hostBinary(p)
		if err != nil {
			return err
		}
		resolvers = append(resolvers, files...)
	}
	tools = append(tools, nsswitch)
	if err := write(filepath.Join(out, "glibc-dns-testing.tar"), image{
		tags:    []string{e2eRegistry + "glibc-dns-testing:2.1.1"},
		cmd:     []string{"sh"},
		env:     bb.env,
		entries: withParents(clone(bb.entries), append(resolvers, nsswitch)...),
	}); err != nil {
		return err
	}
	agn := image{
		tags:       []string{e2eAgnhost, e2eAgnhostV1},
		entrypoint: []string{"/agnhost"},
		cmd:        []string{"pause"},
		env:        bb.env,
		entries: withParents(append(clone(bb.entries),
			entry{name: "agnhost", mode: 0o755, data: agnhost},
			entry{name: "agnhost-2", link: "agnhost"},
			entry{name: "uploads", mode: 0o755, isDir: true},
		), append(append(tools, porterFiles...), entry{name: "bin/sh", link: "dash"})...),
	}
	if err := write(filepath.Join(out, "agnhost.tar"), agn); err != nil {
		return err
	}
	for _, s := range []struct {
		file string
		tags []string
		path string // served by httpd from /www
		body string
	}{
		{"nginx.tar", []string{e2eRegistry + "nginx:1.27.0-2", e2eRegistry + "nginx:1.28.0-2"},
			"index.html", "<title>Welcome to nginx!</title> (skiff stand-in)\n"},
		{"nautilus.tar", []string{e2eRegistry + "nautilus:1.8"}, "data.json", `{"image": "nautilus.jpg"}` + "\n"},
		{"kitten.tar", []string{e2eRegistry + "kitten:1.8"}, "data.json", `{"image": "kitten.jpg"}` + "\n"},
	} {
		img := image{
			tags: s.tags,
			cmd:  []string{"httpd", "-f", "-p", "80", "-h", "/www"},
			env:  bb.env,
			entries: withParents(clone(bb.entries),
				entry{name: "www/" + s.path, mode: 0o644, data: []byte(s.body)}),
		}
		if err := write(filepath.Join(out, s.file), img); err != nil {
			return err
		}
	}
	return nil
}

// binLinks links every busybox applet installed outside /bin into /bin
// as well: upstream's busybox image has them all there, and specs run
// e.g. /bin/sysctl, which Debian installs in /sbin.
func binLinks(entries []entry) []entry {
	have := map[string]bool{}
	for _, e := range entries {
		have[e.name] = true
	}
	var out []entry
	for _, e := range entries {
		if e.link != "/bin/busybox" || path.Dir(e.name) == "bin" {
			continue
		}
		name := "bin/" + path.Base(e.name)
		if !have[name] {
			have[name] = true
			out = append(out, entry{name: name, link: "/bin/busybox"})
		}
	}
	return out
}

// nsswitch makes glibc's getent read /etc/hosts before DNS: without the
// file glibc asks DNS first and stops at its "not found", and the DNS specs
// look up the pod's own name, which the kubelet writes into /etc/hosts.
var nsswitch = entry{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")}

// hostBinary returns a dynamically linked host binary with the shared
// libraries ldd names and the loader, at the paths it looks for them.
func hostBinary(path string) ([]entry, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", path, err)
	}
	files := []entry{{name: strings.TrimPrefix(path, "/"), mode: 0o755, data: bin}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or the
		// loader, "/lib64/ld-linux-x86-64.so.2 (0x...)".
		f := strings.Fields(sc.Text())
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		data, err := os.ReadFile(lib) // follows symlinks: the image gets a plain file
		if err != nil {
			return nil, err
		}
		files = append(files, entry{name: strings.TrimPrefix(lib, "/"), mode: 0o755, data: data})
	}
	return files, sc.Err()
}

// withParents adds extra to entries, replacing entries of the same name
// and adding the directories extra needs that entries lacks.
func withParents(entries []entry, extra ...entry) []entry {
	byName := map[string]int{}
	for i, e := range entries {
		byName[e.name] = i
	}
	add := func(e entry) {
		if i, ok := byName[e.name]; ok {
			entries[i] = e
			return
		}
		byName[e.name] = len(entries)
		entries = append(entries, e)
	}
	for _, e := range extra {
		for d := filepath.Dir(e.name); d != "."; d = filepath.Dir(d) {
			if _, ok := byName[d]; !ok {
				add(entry{name: d, mode: 0o755, isDir: true})
			}
		}
		add(e)
	}
	return entries
}

func clone(entries []entry) []entry {
	return append([]entry(nil), entries...)
}
