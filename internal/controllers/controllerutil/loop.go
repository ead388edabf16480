package controllerutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/crash"
)

// NewQueue returns the rate-limited queue of object keys every controller
// works from (exponential per-item backoff, overall rate limit).
func NewQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// requeue asks for a key to be looked at again later without counting as
// a failure (waiting for something else to happen, not retrying an error).
type requeue struct{ after time.Duration }

func (r requeue) Error() string { return "requeue after " + r.after.String() }

// RequeueAfter is returned by a sync that must look again after d.
func RequeueAfter(d time.Duration) error { return requeue{after: d} }

// RunWorkers processes keys from q with sync in n workers until ctx ends,
// then shuts the queue down. Failed keys are retried with backoff.
func RunWorkers(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], n int,
	sync func(context.Context, string) error, log *slog.Logger) {
	defer q.ShutDown()
	for i := 0; i < n; i++ {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			for processNext(ctx, q, sync, log) {
			}
		}, time.Second)
	}
	<-ctx.Done()
}

// RunSynced waits until the informers behind synced have listed, then
// runs RunWorkers; if ctx ends first, it shuts q down and returns.
func RunSynced(ctx context.Context, synced []cache.InformerSynced, q workqueue.TypedRateLimitingInterface[string], n int,
	sync func(context.Context, string) error, log *slog.Logger) {
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		q.ShutDown()
		return
	}
	RunWorkers(ctx, q, n, sync, log)
}

func processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], sync func(context.Context, string) error, log *slog.Logger) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	err := syncRecovering(ctx, key, sync, log)
	var r requeue
	switch {
	case err == nil:
		q.Forget(key)
	case errors.As(err, &r):
		q.Forget(key)
		q.AddAfter(key, r.after)
	default:
		log.Debug("sync failed; retrying", "key", key, "err", err)
		q.AddRateLimited(key)
	}
	return true
}

// syncRecovering runs sync, turning a panic into an error so that the key
// is retried with backoff and the worker (and process) carry on.
func syncRecovering(ctx context.Context, key string, sync func(context.Context, string) error, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			crash.Recovered(log.With("key", key), "controller", r)
			err = fmt.Errorf("sync %s panicked: %v", key, r)
		}
	}()
	return sync(ctx, key)
}

// NewRecorder returns an event recorder for component; start the
// broadcaster with StartEvents when the controller runs.
func NewRecorder(component string) (record.EventBroadcaster, record.EventRecorder) {
	b := record.NewBroadcaster()
	return b, b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// StartEvents sends recorded events to the API server until ctx ends.
func StartEvents(ctx context.Context, b record.EventBroadcaster, client kubernetes.Interface) {
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	go func() {
		<-ctx.Done()
		b.Shutdown()
	}()
}
