package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Scheduler defaults, as `skiff server` flags.
const (
	DefaultSchedule  = "0 */12 * * *"
	DefaultRetention = 5
	// StatusFile, in the snapshot dir, records the last outcome.
	StatusFile = "status.json"
)

// ScheduleConfig configures scheduled snapshots.
type ScheduleConfig struct {
	Client *clientv3.Client
	// Schedule is a standard 5-field cron expression (minute hour
	// day-of-month month day-of-week), in local time.
	Schedule string
	// Retention is how many scheduled snapshots to keep (<= 0: all).
	Retention int
	// Dir receives the snapshots and status.json.
	Dir string
	// NodeName goes into file names, so servers sharing a dir stay apart.
	NodeName     string
	SkiffVersion string
	Logger       *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Status is what status.json holds.
type Status struct {
	LastSuccess  *time.Time `json:"lastSuccess,omitempty"`
	LastSnapshot string     `json:"lastSnapshot,omitempty"`
	LastFailure  *time.Time `json:"lastFailure,omitempty"`
	LastError    string     `json:"lastError,omitempty"`
	Successes    int        `json:"successes"`
	Failures     int        `json:"failures"`
}

// Scheduler takes snapshots on a cron schedule, prunes old ones and
// reports outcomes in the log, metrics and status.json.
type Scheduler struct {
	cfg      ScheduleConfig
	schedule cron.Schedule
	mu       sync.Mutex // one snapshot at a time; guards status
	status   Status
}

// ParseSchedule checks a 5-field cron expression.
func ParseSchedule(expr string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("etcd snapshot schedule %q: %w", expr, err)
	}
	return s, nil
}

// NewScheduler validates cfg.
func NewScheduler(cfg ScheduleConfig) (*Scheduler, error) {
	if cfg.Client == nil || cfg.Dir == "" {
		return nil, errors.New("snapshot scheduler needs an etcd client and a dir")
	}
	sched, err := ParseSchedule(cfg.Schedule)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NodeName == "" {
		cfg.NodeName, _ = os.Hostname()
	}
	cfg.NodeName = sanitize(cfg.NodeName)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd snapshot dir: %w", err)
	}
	return &Scheduler{cfg: cfg, schedule: sched}, nil
}

// Run takes snapshots at the scheduled times until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	s.cfg.Logger.Info("scheduled etcd snapshots", "schedule", s.cfg.Schedule, "dir", s.cfg.Dir, "retention", s.cfg.Retention)
	for {
		now := s.cfg.Now()
		next := s.schedule.Next(now)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_, _ = s.Snapshot(ctx)
	}
}

// prefix starts the names of this scheduler's snapshots.
func (s *Scheduler) prefix() string { return "etcd-snapshot-" + s.cfg.NodeName + "-" }

// Snapshot takes one snapshot now, prunes beyond the retention and records
// the outcome.
func (s *Scheduler) Snapshot(ctx context.Context) (*Metadata, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now().UTC()
	file := filepath.Join(s.cfg.Dir, s.prefix()+now.Format("20060102T150405Z")+snapshotExt)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	meta, err := Save(sctx, s.cfg.Client, file, SaveOptions{SkiffVersion: s.cfg.SkiffVersion, Now: s.cfg.Now})
	if err != nil {
		failureTotal.Inc()
		s.status.Failures++
		s.status.LastFailure, s.status.LastError = &now, err.Error()
		s.cfg.Logger.Error("scheduled etcd snapshot failed", "file", file, "err", err)
		s.writeStatus()
		return nil, err
	}
	successTotal.Inc()
	lastSuccess.Set(float64(meta.Time.Unix()))
	lastSize.Set(float64(meta.Size))
	s.status.Successes++
	s.status.LastSuccess, s.status.LastSnapshot = &meta.Time, file
	s.cfg.Logger.Info("saved etcd snapshot", "file", file, "revision", meta.Revision, "size", meta.Size)
	removed, err := Prune(s.cfg.Dir, s.prefix(), s.cfg.Retention)
	if err != nil {
		s.cfg.Logger.Warn("pruning etcd snapshots", "err", err)
	}
	for _, r := range removed {
		s.cfg.Logger.Info("pruned etcd snapshot", "file", r)
	}
	s.writeStatus()
	return meta, nil
}

// Status returns the outcomes so far.
func (s *Scheduler) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *Scheduler) writeStatus() {
	raw, err := jsonIndent(s.status)
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.cfg.Dir, StatusFile), raw)
	}
	if err != nil {
		s.cfg.Logger.Warn("writing etcd snapshot status", "err", err)
	}
}

// sanitize keeps a node name usable in a file name.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, name)
}
