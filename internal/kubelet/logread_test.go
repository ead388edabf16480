package kubelet

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestLogWriterShowsOpenLines: output that does not end in a newline (the
// runtime's P entries with no F after them) is shown, as upstream's
// kubelet shows it, whether streamed, with timestamps, or under tailLines;
// a line split across P entries is one line with one timestamp.
func TestLogWriterShowsOpenLines(t *testing.T) {
	const log = "2026-12-02T10:00:00.000000001Z stdout F first\n" +
		"2026-12-02T10:00:01.000000001Z stdout P sec\n" +
		"2026-12-02T10:00:02.000000001Z stdout F ond\n" +
		"2026-12-02T10:00:03.000000001Z stdout P hello-\n" +
		"2026-12-02T10:00:04.000000001Z stdout P block\n"
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts logOptions
		want string
	}{
		{"streamed", logOptions{tailLines: -1}, "first\nsecond\nhello-block"},
		{"timestamps", logOptions{tailLines: -1, timestamps: true},
			"2026-12-02T10:00:00.000000001Z first\n2026-12-02T10:00:01.000000001Z second\n2026-12-02T10:00:03.000000001Z hello-block"},
		{"tail 1", logOptions{tailLines: 1}, "hello-block"},
		{"tail 2", logOptions{tailLines: 2}, "second\nhello-block"},
		{"tail 5", logOptions{tailLines: 5}, "first\nsecond\nhello-block"},
		{"tail 0", logOptions{tailLines: 0}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			lw := &logWriter{out: &out, opts: tc.opts}
			if tc.opts.tailLines >= 0 {
				lw.tail, lw.buffered = tc.opts.tailLines, true
			}
			offset, err := lw.copyFile(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := lw.flushTail(); err != nil {
				t.Fatal(err)
			}
			if offset != int64(len(log)) {
				t.Errorf("offset %d, want %d", offset, len(log))
			}
			if got := out.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
