package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	spdystream "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// kubectl 1.30+ speaks WebSocket to the API server; kubelets (through
// containerd 1.6) speak SPDY. As upstream's API server does, Skiff
// translates: remote commands (exec, attach) over the v5/v4 channel
// protocol, and port-forward as SPDY tunnelled inside WebSocket messages.

const (
	channelV5       = "v5.channel.k8s.io"
	channelV4       = "v4.channel.k8s.io"
	spdyTunnelProto = "SPDY/3.1+portforward.k8s.io"

	chanStdin  = 0
	chanStdout = 1
	chanStderr = 2
	chanError  = 3
	chanResize = 4
	chanClose  = 255 // v5: the client closed one of its streams
)

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func offers(r *http.Request, proto string) bool {
	for _, p := range websocket.Subprotocols(r) {
		if p == proto {
			return true
		}
	}
	return false
}

// serveStream routes an upgrade to the kubelet: straight through for SPDY,
// translated for WebSocket.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, sub string, target *url.URL) {
	switch {
	case !isWebSocket(r):
		s.proxy(w, r, target, true)
	case sub == "portforward" && offers(r, spdyTunnelProto):
		s.tunnelPortForward(w, r, target)
	case sub != "portforward" && (offers(r, channelV5) || offers(r, channelV4)):
		s.translateRemoteCommand(w, r, target)
	default:
		// A WebSocket protocol we do not translate: let the client fall
		// back to SPDY.
		http.Error(w, "unsupported WebSocket subprotocol; use SPDY", http.StatusBadRequest)
	}
}

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	// Authentication is by client certificate or token, not cookies.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsChannels writes channel-prefixed messages to a WebSocket; gorilla
// allows one writer at a time.
type wsChannels struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (c *wsChannels) send(ch byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	msg := make([]byte, len(p)+1)
	msg[0] = ch
	copy(msg[1:], p)
	return c.ws.WriteMessage(websocket.BinaryMessage, msg)
}

type channelWriter struct {
	c  *wsChannels
	ch byte
}

func (w channelWriter) Write(p []byte) (int, error) {
	if err := w.c.send(w.ch, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sizeQueue feeds resize messages to the SPDY executor.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
	done  <-chan struct{}
}

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s := <-q.sizes:
		return &s
	case <-q.done:
		return nil
	}
}

// translateRemoteCommand runs exec or attach against the kubelet over SPDY
// on behalf of a WebSocket client.
func (s *Server) translateRemoteCommand(w http.ResponseWriter, r *http.Request, target *url.URL) {
	up := upgrader
	up.Subprotocols = []string{channelV5, channelV4}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer ws.Close()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	q := r.URL.Query()
	flag := func(name string) bool { return q.Get(name) == "true" || q.Get(name) == "1" }
	tty := flag("tty")
	out := &wsChannels{ws: ws}
	opts := remotecommand.StreamOptions{Tty: tty}
	if flag("stdout") {
		opts.Stdout = channelWriter{out, chanStdout}
	}
	if flag("stderr") && !tty {
		opts.Stderr = channelWriter{out, chanStderr}
	}
	var stdinW *io.PipeWriter
	if flag("stdin") {
		var stdinR *io.PipeReader
		stdinR, stdinW = io.Pipe()
		opts.Stdin = stdinR
	}
	sizes := sizeQueue{sizes: make(chan remotecommand.TerminalSize, 4), done: ctx.Done()}
	if tty {
		opts.TerminalSizeQueue = sizes
	}
	go func() {
		defer cancel()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				if stdinW != nil {
					stdinW.Close()
				}
				return
			}
			if len(msg) == 0 {
				continue
			}
			switch msg[0] {
			case chanStdin:
				if stdinW != nil {
					_, _ = stdinW.Write(msg[1:])
				}
			case chanResize:
				var size remotecommand.TerminalSize
				if json.Unmarshal(msg[1:], &size) == nil {
					select {
					case sizes.sizes <- size:
					default:
					}
				}
			case chanClose:
				if len(msg) > 1 && msg[1] == chanStdin && stdinW != nil {
					stdinW.Close()
				}
			}
		}
	}()

	rt, err := spdystream.NewRoundTripperWithConfig(spdystream.RoundTripperConfig{TLS: s.cfg.KubeletTLS, PingPeriod: 5 * time.Second})
	if err == nil {
		var ex remotecommand.Executor
		if ex, err = remotecommand.NewSPDYExecutorForTransports(rt, rt, http.MethodPost, target); err == nil {
			err = ex.StreamWithContext(ctx, opts)
		}
	}
	status, _ := json.Marshal(commandStatus(err))
	_ = out.send(chanError, status)
	out.mu.Lock()
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	out.mu.Unlock()
}

// commandStatus is what the error channel carries at the end: Success, or
// the exit code the way kubectl reads it.
func commandStatus(err error) *metav1.Status {
	st := &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	if err == nil {
		return st
	}
	st.Status = metav1.StatusFailure
	var exit utilexec.CodeExitError
	if errors.As(err, &exit) {
		st.Reason = "NonZeroExitCode"
		st.Message = fmt.Sprintf("command terminated with non-zero exit code: %v", exit)
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: fmt.Sprint(exit.Code)}}}
		return st
	}
	st.Reason = metav1.StatusReasonInternalError
	st.Message = err.Error()
	return st
}

// tunnelPortForward carries the client's SPDY port-forward session, which
// arrives inside WebSocket messages, to the kubelet over a plain SPDY
// upgrade, copying bytes both ways.
func (s *Server) tunnelPortForward(w http.ResponseWriter, r *http.Request, target *url.URL) {
	backend, err := s.dialSPDY(r.Context(), target, "portforward.k8s.io")
	if err != nil {
		s.writeError(w, r, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadGateway,
			Reason: metav1.StatusReasonServiceUnavailable, Message: "error dialing kubelet: " + err.Error()}})
		return
	}
	defer backend.Close()
	up := upgrader
	up.Subprotocols = []string{spdyTunnelProto}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	done := make(chan struct{}, 2)
	go func() { // client → kubelet
		defer func() { done <- struct{}{} }()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if _, err := backend.Write(msg); err != nil {
				return
			}
		}
	}()
	go func() { // kubelet → client
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := backend.Read(buf)
			if n > 0 {
				if werr := ws.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	<-done
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// dialSPDY opens a TLS connection to the kubelet and upgrades it to SPDY
// with the given stream protocol, returning the raw connection.
func (s *Server) dialSPDY(ctx context.Context, target *url.URL, protocol string) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: s.cfg.KubeletTLS}
	conn, err := d.DialContext(ctx, "tcp", target.Host)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", protocol)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, fmt.Errorf("kubelet answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads first what the response reader already buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
