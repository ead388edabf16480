package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/internal/kubelet/criremote"
)

// runHook runs a postStart or preStop handler against a container.
func (k *Kubelet) runHook(ctx context.Context, pod *v1.Pod, c *v1.Container, containerID string, h *v1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		out, code, err := k.execSync(ctx, containerID, h.Exec.Command)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("command %q exited with %d: %s", strings.Join(h.Exec.Command, " "), code, strings.TrimSpace(out))
		}
		return nil
	case h.HTTPGet != nil:
		return httpCheck(ctx, k.probeHostFor(pod), c, h.HTTPGet)
	case h.Sleep != nil:
		t := k.clock.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C():
		case <-ctx.Done():
		}
		return nil
	}
	return nil
}

// execSync runs a command in a container within ctx's deadline and returns
// its combined output and exit code.
func (k *Kubelet) execSync(ctx context.Context, containerID string, cmd []string) (string, int32, error) {
	timeout := time.Duration(0)
	if dl, ok := ctx.Deadline(); ok {
		// Context deadlines are on the wall clock, not k.clock.
		timeout = max(time.Until(dl), time.Second)
	}
	stdout, stderr, err := k.runtime.runtime.ExecSync(ctx, containerID, cmd, timeout)
	if code := criremote.ExitCode(err); code > 0 {
		return string(stdout) + string(stderr), code, nil // ran and failed
	}
	if err != nil {
		return "", -1, fmt.Errorf("exec %q: %w", strings.Join(cmd, " "), err)
	}
	return string(stdout) + string(stderr), 0, nil
}

// resolvePort turns a numeric or named port into a number.
func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q not found in the container's ports", p.StrVal)
}

var probeTransport = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // probes never verify, as upstream
	DisableKeepAlives: true,
	DialContext:       (&net.Dialer{}).DialContext,
}

// httpCheck performs an httpGet action: any status in [200, 400) succeeds.
func httpCheck(ctx context.Context, defaultHost string, c *v1.Container, g *v1.HTTPGetAction) error {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return err
	}
	host := g.Host
	if host == "" {
		host = defaultHost
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	u, err = u.Parse(path)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: probeTransport, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 || r.URL.Hostname() != u.Hostname() {
			return http.ErrUseLastResponse // redirects elsewhere count as success, as upstream
		}
		return nil
	}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}
