package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// clientURLFile records, in an embedded etcd's dir, the unix:// URL of its
// client socket, so that `skiff etcd-snapshot save` can reach the etcd of
// a running server.
const clientURLFile = "client-url"

// The identity every embedded etcd member has: StartEmbedded's name and
// advertised peer URL. A snapshot restored for an embedded etcd must give
// its single member exactly these, or StartEmbedded would not accept it.
const (
	EmbeddedMemberName = "skiff"
	EmbeddedPeerURL    = "http://127.0.0.1:0"
)

// EmbeddedClientURL returns the client URL of the running embedded etcd
// under dir, as StartEmbedded recorded it.
func EmbeddedClientURL(dir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, clientURLFile))
	if err != nil {
		return "", fmt.Errorf("no running embedded etcd under %s (is the server running?): %w", dir, err)
	}
	return strings.TrimSpace(string(raw)), nil
}
