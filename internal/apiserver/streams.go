package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
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
// translates: remote commands (exec, attach) over the channel protocols
// (v5 and v4 for kubectl, the older ones for other clients), port-forward
// as SPDY tunnelled inside WebSocket messages, and logs as plain frames.

const (
	channelV5       = "v5.channel.k8s.io"
	channelV4       = "v4.channel.k8s.io"
	channelV4Base64 = "v4.base64.channel.k8s.io"
	channelV1       = "channel.k8s.io"
	channelV1Base64 = "base64.channel.k8s.io"
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

// remoteCommandProtocols are the WebSocket subprotocols of exec and
// attach, preferred first. v4 and later carry a JSON Status on the error
// channel, earlier ones the error's text; base64 variants send text frames
// whose first character is the channel's digit.
var remoteCommandProtocols = []string{channelV5, channelV4, channelV4Base64, channelV1, channelV1Base64}

func offers(r *http.Request, protos ...string) bool {
	for _, p := range websocket.Subprotocols(r) {
		if slices.Contains(protos, p) {
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
	case sub != "portforward" && offers(r, remoteCommandProtocols...):
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
	mu     sync.Mutex
	ws     *websocket.Conn
	base64 bool // text frames: the channel as a digit, then base64
}

func (c *wsChannels) send(ch byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base64 {
		msg := make([]byte, 1+base64.StdEncoding.EncodedLen(len(p)))
		msg[0] = '0' + ch
		base64.StdEncoding.Encode(msg[1:], p)
		return c.ws.WriteMessage(websocket.TextMessage, msg)
	}
	msg := make([]byte, len(p)+1)
	msg[0] = ch
	copy(msg[1:], p)
	return c.ws.WriteMessage(websocket.BinaryMessage, msg)
}

// decode splits a client's message into its channel and payload.
func (c *wsChannels) decode(msg []byte) (byte, []byte, bool) {
	if len(msg) == 0 {
		return 0, nil, false
	}
	if !c.base64 {
		return msg[0], msg[1:], true
	}
	data, err := base64.StdEncoding.DecodeString(string(msg[1:]))
	if err != nil || msg[0] < '0' {
		return 0, nil, false
	}
	return msg[0] - '0', data, true
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
	up.Subprotocols = remoteCommandProtocols
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
	proto := ws.Subprotocol()
	out := &wsChannels{ws: ws, base64: strings.Contains(proto, "base64")}
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
			ch, data, ok := out.decode(msg)
			if !ok {
				continue
			}
			switch ch {
			case chanStdin:
				if stdinW != nil {
					_, _ = stdinW.Write(data)
				}
			case chanResize:
				var size remotecommand.TerminalSize
				if json.Unmarshal(data, &size) == nil {
					select {
					case sizes.sizes <- size:
					default:
					}
				}
			case chanClose:
				if len(data) > 0 && data[0] == chanStdin && stdinW != nil {
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
	st := commandStatus(err)
	switch {
	case proto == channelV5 || strings.HasPrefix(proto, "v4."):
		status, _ := json.Marshal(st)
		_ = out.send(chanError, status)
	case st.Status != metav1.StatusSuccess:
		_ = out.send(chanError, []byte(st.Message)) // v1: the error's text, nothing on success
	}
	out.mu.Lock()
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	out.mu.Unlock()
}

// The WebSocket subprotocols of a log stream: the log's bytes as binary
// frames, or as base64 in text frames.
const (
	binaryProto       = "binary.k8s.io"
	base64BinaryProto = "base64.binary.k8s.io"
)

// logOverWebSocket streams a container's log from the kubelet to a client
// that asked for it over WebSocket, as upstream's API server serves it
// (binary frames unless the client chose base64). The kubelet's refusals
// are answered as plain HTTP, before any upgrade.
func (s *Server) logOverWebSocket(w http.ResponseWriter, r *http.Request, target *url.URL) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		s.writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	resp, err := s.cfg.KubeletTransport.RoundTrip(req)
	if err != nil {
		s.writeError(w, r, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadGateway,
			Reason: metav1.StatusReasonServiceUnavailable, Message: "error dialing kubelet: " + err.Error()}})
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	up := upgrader
	up.Subprotocols = []string{binaryProto, base64BinaryProto}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	go func() {
		// Reading answers the client's control frames and notices it
		// leave, which ends the kubelet request.
		defer cancel()
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}()
	b64 := ws.Subprotocol() == base64BinaryProto
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			kind, msg := websocket.BinaryMessage, buf[:n]
			if b64 {
				kind, msg = websocket.TextMessage, []byte(base64.StdEncoding.EncodeToString(buf[:n]))
			}
			if werr := ws.WriteMessage(kind, msg); werr != nil {
				return
			}
		}
		if err != nil {
			break
		}
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
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
