// Package leaderelect runs a function only while this process holds a
// coordination.k8s.io Lease, so that of several servers one schedules and
// reconciles at a time.
package leaderelect

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Timings are upstream's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Run blocks until ctx ends, calling run whenever this process becomes the
// holder of kube-system/<name>. run's context is cancelled when the lease
// is lost.
func Run(ctx context.Context, client kubernetes.Interface, name string, log *slog.Logger, run func(ctx context.Context)) error {
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s_%s", host, uuid.NewUUID())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: "kube-system", Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   leaseDuration,
			RenewDeadline:   renewDeadline,
			RetryPeriod:     retryPeriod,
			ReleaseOnCancel: true,
			Name:            name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					log.Info("became leader", "lease", name, "identity", id)
					run(ctx)
				},
				OnStoppedLeading: func() { log.Info("stopped leading", "lease", name) },
			},
		})
		if err != nil {
			return fmt.Errorf("leader election %s: %w", name, err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}
