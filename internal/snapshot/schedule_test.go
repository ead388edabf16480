package snapshot

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock advances a minute per call, so each snapshot gets its own name.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

// TestSchedulerKeepsRetentionAndReports takes more snapshots than the
// retention: the oldest scheduled ones go, hand-made ones stay, and the
// status file and metrics record successes and failures.
func TestSchedulerKeepsRetentionAndReports(t *testing.T) {
	e, stopEtcd := startStoppableEtcd(t, filepath.Join(t.TempDir(), "etcd"))
	dir := t.TempDir()
	manual := filepath.Join(dir, "before-upgrade.db")
	early := func() time.Time { return time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC) }
	if _, err := Save(context.Background(), e.Client, manual, SaveOptions{Now: early}); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := NewScheduler(ScheduleConfig{Client: e.Client, Schedule: DefaultSchedule, Retention: 2, Dir: dir, NodeName: "node/1", Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	okBefore, failBefore := testutil.ToFloat64(successTotal), testutil.ToFloat64(failureTotal)
	var last *Metadata
	for range 4 {
		if last, err = s.Snapshot(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name)
	}
	if len(names) != 3 || names[0] != "before-upgrade.db" || !strings.HasPrefix(names[1], "etcd-snapshot-node_1-") {
		t.Fatalf("snapshots after 4 runs with retention 2: %v", names)
	}
	if entries[2].Path != s.Status().LastSnapshot || entries[2].Revision != last.Revision {
		t.Errorf("newest entry %+v, status %+v", entries[2], s.Status())
	}
	for _, en := range entries {
		if _, err := os.Stat(en.Path + MetadataSuffix); err != nil {
			t.Errorf("%s has no metadata: %v", en.Name, err)
		}
	}
	if got := testutil.ToFloat64(successTotal) - okBefore; got != 4 {
		t.Errorf("success counter moved by %v, want 4", got)
	}

	// A failure is counted and recorded, and the snapshots stay.
	stopEtcd()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Snapshot(ctx); err == nil {
		t.Fatal("a snapshot of a stopped etcd succeeded")
	}
	if got := testutil.ToFloat64(failureTotal) - failBefore; got != 1 {
		t.Errorf("failure counter moved by %v, want 1", got)
	}
	raw, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Successes != 4 || st.Failures != 1 || st.LastError == "" || st.LastSuccess == nil {
		t.Errorf("status.json = %s", raw)
	}
	if after, _ := List(dir); len(after) != 3 {
		t.Errorf("a failed snapshot changed the dir: %v", after)
	}
}

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{DefaultSchedule, true}, {"*/5 * * * *", true}, {"0 3 * * 1-5", true},
		{"", false}, {"every day", false}, {"0 25 * * *", false}, {"* * * *", false},
	} {
		_, err := ParseSchedule(tc.expr)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSchedule(%q) error = %v, want ok=%v", tc.expr, err, tc.ok)
		}
	}
	s, _ := ParseSchedule(DefaultSchedule)
	from := time.Date(2026, 1, 1, 5, 30, 0, 0, time.Local)
	if next := s.Next(from); !next.Equal(time.Date(2026, 1, 1, 12, 0, 0, 0, time.Local)) {
		t.Errorf("next after %v = %v", from, next)
	}
}
