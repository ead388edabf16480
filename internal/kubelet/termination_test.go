package kubelet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// With FallbackToLogsOnError, a failed container that wrote no termination
// message gets its log's tail (the conformance spec echoes "DONE" without a
// newline and exits 1); a successful one, or the default policy, gets none.
func TestTerminationMessageFallsBackToLogs(t *testing.T) {
	k := testKubelet(t)
	logPath := filepath.Join(t.TempDir(), "0.log")
	var log strings.Builder
	for i := range 100 {
		log.WriteString("2026-12-03T07:05:38.000000000Z stdout F line " + string(rune('a'+i%26)) + "\n")
	}
	log.WriteString("2026-12-03T07:05:39.000000000Z stdout P DONE\n")
	if err := os.WriteFile(logPath, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1"}}
	fallback := &v1.Container{Name: "c", TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError}
	failed := &runtimeapi.ContainerStatus{ExitCode: 1, LogPath: logPath, Metadata: &runtimeapi.ContainerMetadata{Name: "c"}}

	msg := k.terminationMessage(pod, fallback, failed)
	if !strings.HasSuffix(msg, "line v\nDONE") {
		t.Errorf("message ends %q, want the log's last lines ending in DONE", msg[max(0, len(msg)-20):])
	}
	if lines := strings.Count(msg, "\n") + 1; lines > maxTerminationLogLines || len(msg) > maxTerminationLogBytes {
		t.Errorf("message of %d lines and %d bytes, want at most %d and %d", lines, len(msg), maxTerminationLogLines, maxTerminationLogBytes)
	}
	succeeded := &runtimeapi.ContainerStatus{ExitCode: 0, LogPath: logPath, Metadata: failed.Metadata}
	if msg := k.terminationMessage(pod, fallback, succeeded); msg != "" {
		t.Errorf("successful container: message %q, want none", msg)
	}
	if msg := k.terminationMessage(pod, &v1.Container{Name: "c"}, failed); msg != "" {
		t.Errorf("default policy: message %q, want none", msg)
	}
}
