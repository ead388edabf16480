package crash

import (
	"log/slog"
	"net/http"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

func TestRecoverCountsAndSwallows(t *testing.T) {
	before := Count("test")
	func() {
		defer Recover(slog.New(slog.DiscardHandler), "test")
		panic("bug")
	}()
	if got := Count("test") - before; got != 1 {
		t.Errorf("count grew by %v, want 1", got)
	}
}

func TestRecoverPassesAbortHandler(t *testing.T) {
	defer func() {
		if r := recover(); r != http.ErrAbortHandler { //nolint:errorlint // sentinel panic value
			t.Errorf("recovered %v, want http.ErrAbortHandler passed on", r)
		}
	}()
	defer Recover(slog.New(slog.DiscardHandler), "test")
	panic(http.ErrAbortHandler)
}

// TestClientGoHandleCrashDoesNotCrash: client-go's HandleCrash (informer
// handlers, wait.Until) re-panics by default; installed, it counts instead.
func TestClientGoHandleCrashDoesNotCrash(t *testing.T) {
	InstallClientGoHandler()
	before := Count("client-go")
	func() {
		defer utilruntime.HandleCrash()
		panic("handler bug")
	}()
	if got := Count("client-go") - before; got != 1 {
		t.Errorf("count grew by %v, want 1", got)
	}
}
