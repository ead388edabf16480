package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
)

// ServiceReference names the Service in front of a webhook, as
// admissionregistration's and apiextensions' ServiceReference do.
type ServiceReference struct {
	Namespace string
	Name      string
	Path      *string
	// Port defaults to 443.
	Port *int32
}

// ClientConfig says where a webhook listens and which CA signs its serving
// certificate; exactly one of URL and Service is set.
type ClientConfig struct {
	URL      *string
	Service  *ServiceReference
	CABundle []byte
}

// ServiceResolver turns a Service port into an address to dial.
type ServiceResolver interface {
	// ResolveService returns "host:port" of a ready endpoint of the
	// Service's port, or of its cluster IP.
	ResolveService(ctx context.Context, namespace, name string, port int32) (string, error)
}

// maxResponseBytes bounds what a webhook may answer, so a broken one
// cannot exhaust the server's memory.
const maxResponseBytes = 16 << 20

// Caller posts JSON to webhooks over TLS, reusing one HTTP client per CA
// bundle and server name.
type Caller struct {
	resolver ServiceResolver

	mu      sync.Mutex
	clients map[clientKey]*http.Client
}

type clientKey struct {
	caBundle   string
	serverName string
}

// NewCaller returns a Caller resolving services with r (may be nil when
// only URL webhooks are called).
func NewCaller(r ServiceResolver) *Caller {
	return &Caller{resolver: r, clients: map[clientKey]*http.Client{}}
}

// Post sends in as JSON to the webhook of cfg and decodes its answer into
// out. timeout (if positive) bounds the whole call and is passed to the
// webhook as the timeout query parameter, rounded up to seconds as upstream
// does. A non-2xx answer is an error; when its body is a Status the error
// is an *apierrors.StatusError.
func (c *Caller) Post(ctx context.Context, cfg ClientConfig, timeout time.Duration, in, out any) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	target, host, serverName, err := c.target(ctx, cfg)
	if err != nil {
		return err
	}
	if timeout > 0 {
		q := target.Query()
		q.Set("timeout", roundUpToSecond(timeout).String())
		target.RawQuery = q.Encode()
	}
	client, err := c.client(cfg.CABundle, serverName)
	if err != nil {
		return err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encoding webhook request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, */*")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading webhook response: %w", err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("webhook response larger than %d bytes", maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp.StatusCode, data)
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, out); err != nil {
		return fmt.Errorf("decoding webhook response: %w", err)
	}
	return nil
}

// target returns the URL to post to, the Host header to send (for
// services, the service's DNS name as upstream dials it) and the TLS
// server name to verify.
func (c *Caller) target(ctx context.Context, cfg ClientConfig) (u *url.URL, host, serverName string, err error) {
	switch {
	case cfg.URL != nil:
		u, err = url.Parse(*cfg.URL)
		if err != nil {
			return nil, "", "", fmt.Errorf("parsing webhook URL: %w", err)
		}
		return u, "", "", nil
	case cfg.Service != nil:
		svc := cfg.Service
		port := int32(443)
		if svc.Port != nil {
			port = *svc.Port
		}
		if c.resolver == nil {
			return nil, "", "", errors.New("no service resolver to reach webhook services")
		}
		addr, err := c.resolver.ResolveService(ctx, svc.Namespace, svc.Name, port)
		if err != nil {
			return nil, "", "", fmt.Errorf("resolving service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		u = &url.URL{Scheme: "https", Host: addr}
		if svc.Path != nil {
			u.Path = *svc.Path
		}
		serverName = svc.Name + "." + svc.Namespace + ".svc"
		return u, serverName + ":" + strconv.Itoa(int(port)), serverName, nil
	}
	return nil, "", "", errors.New("webhook client config has neither url nor service")
}

func (c *Caller) client(caBundle []byte, serverName string) (*http.Client, error) {
	key := clientKey{caBundle: string(caBundle), serverName: serverName}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[key]; cl != nil {
		return cl, nil
	}
	tlsConfig := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if len(caBundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			return nil, errors.New("unable to load root certificates: no valid certificate authorities found")
		}
		tlsConfig.RootCAs = pool
	}
	cl := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsConfig,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
	}}
	c.clients[key] = cl
	return cl, nil
}

// responseError turns a non-2xx answer into an error: the Status it
// carries, or one made from the HTTP code.
func responseError(code int, body []byte) error {
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	msg := string(body)
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return apierrors.NewGenericServerResponse(code, "post", schema.GroupResource{}, "", msg, 0, false)
}

func roundUpToSecond(d time.Duration) time.Duration {
	if t := d.Truncate(time.Second); t != d {
		return t + time.Second
	}
	return d
}
