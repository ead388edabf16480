package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/metricshttp"
)

// ServerTLS is the kubelet API's TLS material: its serving certificate and
// the CA whose client certificates it accepts.
type ServerTLS struct {
	CertPEM, KeyPEM []byte
	ClientCAPEM     []byte
	// Current, when set, supplies the serving certificate at every
	// handshake instead of CertPEM and KeyPEM: for a certificate replaced
	// while the kubelet runs (a joined node's, issued after it registers).
	Current func() *tls.Certificate
}

// serve runs the kubelet API (logs, exec, attach, port-forward, stats,
// metrics) until ctx ends.
func (k *Kubelet) serve(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /pods", k.servePods)
	mux.HandleFunc("GET /pods/", k.servePods)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", k.serveLogs)
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", k.serveExec)
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", k.serveAttach)
	mux.HandleFunc("/portForward/{ns}/{pod}", k.servePortForward)
	mux.HandleFunc("GET /stats/summary", k.serveSummary)
	mux.HandleFunc("GET /stats/summary/", k.serveSummary)
	// CSI drivers' controller services, for the built-in provisioner
	// (nodes/proxy, as every path without a narrower subresource).
	mux.HandleFunc("POST /csi/{driver}/controller/{method}", k.csi.ServeController)
	k.handleMetrics(mux)
	srv := &http.Server{
		Handler:           newAPIAuth(k.client, k.cfg.NodeName, k.log).wrap(mux),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(k.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		srv.Close() // hijacked streams end too
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		k.log.Error("kubelet API stopped", "err", err)
	}
}

// listenTLS opens the kubelet API port. Client certificates are verified
// against the cluster CA when given; apiAuth checks every request.
func (k *Kubelet) listenTLS() (net.Listener, error) {
	t := k.cfg.TLS
	cert, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(t.ClientCAPEM) {
		return nil, errors.New("kubelet: no client CA certificate")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(k.cfg.Address, strconv.Itoa(k.cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %w (is another agent using port %d? see --kubelet-port)", err, k.cfg.Port)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		NextProtos:   []string{"http/1.1"}, // streams upgrade HTTP/1.1 connections
	}
	if t.Current != nil {
		cfg.Certificates = nil
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.Current(), nil }
	}
	return tls.NewListener(ln, cfg), nil
}

// writeStatus answers with a Kubernetes Status, which the API server passes
// through to kubectl.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}

func (k *Kubelet) servePods(w http.ResponseWriter, _ *http.Request) {
	pods, err := k.podLister.List(everything)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	list := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	for _, p := range pods {
		list.Items = append(list.Items, *p)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// findPod looks a pod of this node up by namespace and name.
func (k *Kubelet) findPod(ns, name string) (*v1.Pod, error) {
	pod, err := k.podLister.Pods(ns).Get(name)
	if err != nil {
		return nil, fmt.Errorf("pod %q not found on node %s", name, k.cfg.NodeName)
	}
	return pod, nil
}

// runningContainer finds the running instance of a pod's container.
func (k *Kubelet) runningContainer(ctx context.Context, ns, podName, container string) (*runtimeapi.Container, error) {
	pod, err := k.findPod(ns, podName)
	if err != nil {
		return nil, err
	}
	state, err := k.runtime.podState(ctx, pod.UID)
	if err != nil {
		return nil, err
	}
	for _, c := range state.instances(container, "") {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container not found (%q)", container)
}

// streamOptions are the remotecommand query parameters the API server
// forwards: command, stdin, stdout, stderr, tty.
func streamOptions(r *http.Request) (cmd []string, stdin, stdout, stderr, tty bool) {
	q := r.URL.Query()
	flag := func(name string) bool { v := q.Get(name); return v == "1" || v == "true" }
	return q["command"], flag("stdin"), flag("stdout"), flag("stderr"), flag("tty")
}

func (k *Kubelet) serveExec(w http.ResponseWriter, r *http.Request) {
	c, err := k.runningContainer(r.Context(), r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	cmd, stdin, stdout, stderr, tty := streamOptions(r)
	if len(cmd) == 0 {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "you must specify at least 1 command")
		return
	}
	resp, err := k.runtime.runtime.Exec(r.Context(), &runtimeapi.ExecRequest{
		ContainerId: c.Id, Cmd: cmd, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr && !tty,
	})
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	proxyStream(w, r, resp.Url)
}

func (k *Kubelet) serveAttach(w http.ResponseWriter, r *http.Request) {
	c, err := k.runningContainer(r.Context(), r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	_, stdin, stdout, stderr, tty := streamOptions(r)
	resp, err := k.runtime.runtime.Attach(r.Context(), &runtimeapi.AttachRequest{
		ContainerId: c.Id, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr && !tty,
	})
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	proxyStream(w, r, resp.Url)
}

func (k *Kubelet) servePortForward(w http.ResponseWriter, r *http.Request) {
	pod, err := k.findPod(r.PathValue("ns"), r.PathValue("pod"))
	if err != nil {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	state, err := k.runtime.podState(r.Context(), pod.UID)
	if err != nil || state.readySandbox() == nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("pod %s is not running", pod.Name))
		return
	}
	resp, err := k.runtime.runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: state.readySandbox().Id})
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	proxyStream(w, r, resp.Url)
}

// proxyStream forwards an upgrade request (SPDY or WebSocket) to the
// runtime's streaming server, keeping the caller's query and headers; the
// reverse proxy splices the two connections after the 101.
func proxyStream(w http.ResponseWriter, r *http.Request, target string) {
	u, err := url.Parse(target)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path = u.Scheme, u.Host, u.Path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = u.Host
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeStatus(w, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, "runtime stream: "+err.Error())
		},
	}
	proxy.ServeHTTP(w, r)
}

// handleMetrics adds the three metrics endpoints to mux, separate as
// upstream's: the kubelet's own series (a registry), the resource metrics
// metrics-server reads and the cAdvisor container series (written
// directly, exposition.go).
func (k *Kubelet) handleMetrics(mux *http.ServeMux) {
	serve := func(cs ...prometheus.Collector) http.Handler {
		reg := prometheus.NewRegistry()
		reg.MustRegister(cs...)
		return metricshttp.Handler(reg)
	}
	own := append(k.metrics.collectors(), plegFailures(k.pleg), newStateCollector(k.cfg.NodeName, k.pleg))
	mux.Handle("GET /metrics", serve(own...))
	mux.Handle("GET /metrics/resource", serveExposition(k.writeResourceMetrics))
	mux.Handle("GET /metrics/cadvisor", serveExposition(k.writeCadvisorMetrics))
}

// MetricsHandler serves the kubelet's metrics endpoints without the
// kubelet API's authentication, for in-process scrapes (benchmarks).
func (k *Kubelet) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	k.handleMetrics(mux)
	return mux
}
