package cluster

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// settleGoroutines fails the test unless the goroutine count drops to at
// most want: goroutines take a moment to exit after being told to.
func settleGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: want at most %d, have %d\n%s", want, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitStopped(t *testing.T, srv *Server) {
	t.Helper()
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Wait did not return after ctx was cancelled")
	}
}

func TestStartServerStopsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("starts embedded etcd and the API server")
	}
	log := slog.New(slog.DiscardHandler)
	initial := runtime.NumGoroutine()

	// A server that started runs until ctx ends; then Wait returns with the
	// port released, storage closed and no goroutine left. (The in-process
	// scheduler and controller manager are off: stopped before they lead
	// and sync, they leave their event broadcasters and queues behind.)
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := StartServer(ctx, ServerConfig{DataDir: t.TempDir(), SecurePort: port, Logger: log,
		DisableScheduler: true, DisableControllers: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	client, err := srv.Client()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := client.Discovery().ServerVersion(); err != nil {
		cancel()
		t.Fatalf("server not serving after StartServer returned: %v", err)
	}
	etcd := srv.client
	cancel()
	waitStopped(t, srv)
	if etcd.Ctx().Err() == nil {
		t.Error("etcd client still open after Wait")
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Errorf("port still held after Wait: %v", err)
	} else {
		ln.Close()
	}

	settleGoroutines(t, initial)

	// A step that fails after the API server, its loops, the CSR signer and
	// the tokens controller started: the controller manager cannot write
	// its kubeconfig where a directory is in the way. StartServer returns
	// its error with everything stopped again.
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "controller-manager.kubeconfig", "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	port = freePort(t)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	srv, err = StartServer(ctx, ServerConfig{DataDir: dir, SecurePort: port, Logger: log})
	if err == nil {
		cancel()
		srv.Wait()
		t.Fatal("StartServer succeeded though the controller manager cannot start")
	}
	if srv != nil {
		t.Errorf("StartServer returned a server with error %v", err)
	}
	if !strings.HasPrefix(err.Error(), "controller-manager: ") {
		t.Errorf("error = %q, want the controller manager's", err)
	}
	settleGoroutines(t, initial)
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		t.Errorf("port still held after a failed start: %v", err)
	} else {
		ln.Close()
	}
}
