package e2e

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// testWebSocketProtocols speaks to exec and log the way clients older than
// kubectl do (the conformance suite among them): the channel.k8s.io
// protocols, binary and base64, where errors arrive as text, and logs as
// binary.k8s.io or base64.binary.k8s.io frames.
func testWebSocketProtocols(t *testing.T, kubeconfig, pod, container, logLine string) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dialer := websocket.Dialer{TLSClientConfig: tlsCfg}
	base := "wss://" + strings.TrimPrefix(cfg.Host, "https://") + "/api/v1/namespaces/default/pods/" + pod + "/"
	dial := func(t *testing.T, path, proto string) *websocket.Conn {
		t.Helper()
		h := http.Header{"Sec-WebSocket-Protocol": {proto}}
		if cfg.BearerToken != "" {
			h.Set("Authorization", "Bearer "+cfg.BearerToken)
		}
		ws, resp, err := dialer.Dial(base+path, h)
		if err != nil {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("%s over %s: %v (HTTP %d)", path, proto, err, code)
		}
		if got := ws.Subprotocol(); got != proto {
			t.Errorf("%s: server chose subprotocol %q, want %q", path, got, proto)
		}
		return ws
	}
	// channels reads frames until the server closes, by channel.
	channels := func(ws *websocket.Conn, b64 bool) map[byte]string {
		defer ws.Close()
		out := map[byte]string{}
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return out
			}
			if len(msg) == 0 {
				continue
			}
			ch, data := msg[0], msg[1:]
			if b64 {
				ch -= '0'
				if data, err = base64.StdEncoding.DecodeString(string(data)); err != nil {
					t.Errorf("undecodable base64 frame %q", msg)
					continue
				}
			}
			out[ch] += string(data)
		}
	}

	for _, proto := range []string{"channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io"} {
		ws := dial(t, "exec?container="+container+"&command=echo&command=over+"+proto+"&stdout=1&stderr=1", proto)
		got := channels(ws, strings.Contains(proto, "base64"))
		if got[1] != "over "+proto+"\n" {
			t.Errorf("exec over %s: stdout %q, want %q", proto, got[1], "over "+proto+"\n")
		}
		if proto == "channel.k8s.io" && got[3] != "" {
			t.Errorf("exec over %s: a successful command sent %q on the error channel, want nothing", proto, got[3])
		}
		if proto == "v4.channel.k8s.io" && !strings.Contains(got[3], `"status":"Success"`) {
			t.Errorf("exec over %s: error channel %q, want a Success Status", proto, got[3])
		}
	}
	ws := dial(t, "exec?container="+container+"&command=sh&command=-c&command=exit+3&stdout=1&stderr=1", "channel.k8s.io")
	if got := channels(ws, false); !strings.Contains(got[3], "non-zero exit code") {
		t.Errorf("failed exec over channel.k8s.io: error channel %q, want the error's text", got[3])
	}

	for _, proto := range []string{"binary.k8s.io", "base64.binary.k8s.io"} {
		ws := dial(t, "log?container="+container, proto)
		var log strings.Builder
		for {
			kind, msg, err := ws.ReadMessage()
			if err != nil {
				break
			}
			if proto == "base64.binary.k8s.io" {
				if kind != websocket.TextMessage {
					t.Errorf("log over %s: frame type %d, want text", proto, kind)
				}
				if msg, err = base64.StdEncoding.DecodeString(string(msg)); err != nil {
					t.Errorf("log over %s: %v", proto, err)
				}
			}
			log.Write(msg)
		}
		ws.Close()
		if !strings.Contains(log.String(), logLine) {
			t.Errorf("log over %s = %q, want it to hold %q", proto, log.String(), logLine)
		}
	}
}
