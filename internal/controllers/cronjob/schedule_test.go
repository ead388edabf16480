package cronjob

import (
	"testing"
	"time"
)

func TestScheduleNext(t *testing.T) {
	base := time.Date(2026, 3, 14, 10, 7, 30, 0, time.UTC) // a Saturday
	for _, c := range []struct {
		spec string
		want string
	}{
		{"* * * * *", "2026-03-14T10:08:00Z"},
		{"*/15 * * * *", "2026-03-14T10:15:00Z"},
		{"0 * * * *", "2026-03-14T11:00:00Z"},
		{"@hourly", "2026-03-14T11:00:00Z"},
		{"@daily", "2026-03-15T00:00:00Z"},
		{"30 9 * * mon-fri", "2026-03-16T09:30:00Z"},
		{"0 0 1 * *", "2026-04-01T00:00:00Z"},
		{"0 12 * jan,jun *", "2026-06-01T12:00:00Z"},
		{"0 0 13 * 5", "2026-03-20T00:00:00Z"}, // day 13 OR Friday
		{"5-10/5 10 * * *", "2026-03-14T10:10:00Z"},
		{"0 0 * * 7", "2026-03-15T00:00:00Z"}, // 7 is Sunday
	} {
		s, err := ParseSchedule(c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if got := s.Next(base).Format(time.RFC3339); got != c.want {
			t.Errorf("%q after %s = %s, want %s", c.spec, base.Format(time.RFC3339), got, c.want)
		}
	}
	for _, bad := range []string{"* * * *", "61 * * * *", "* * 0 * *", "*/0 * * * *", "x * * * *"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
