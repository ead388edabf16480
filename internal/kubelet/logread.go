package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logOptions are the query parameters of /containerLogs, as the API
// server forwards them from pods/log.
type logOptions struct {
	follow, previous, timestamps bool
	tailLines, limitBytes        int64 // -1: unlimited
	since                        time.Time
}

// parseLogOptions reads the query; sinceSeconds counts back from now.
func parseLogOptions(r *http.Request, now time.Time) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tailLines: -1, limitBytes: -1}
	o.follow = q.Get("follow") == "true" || q.Get("follow") == "1"
	o.previous = q.Get("previous") == "true" || q.Get("previous") == "1"
	o.timestamps = q.Get("timestamps") == "true" || q.Get("timestamps") == "1"
	for name, dst := range map[string]*int64{"tailLines": &o.tailLines, "limitBytes": &o.limitBytes} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return o, fmt.Errorf("%s must be a non-negative integer", name)
			}
			*dst = n
		}
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds must be a positive integer")
		}
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, fmt.Errorf("sinceTime: %v", err)
		}
		o.since = t
	}
	return o, nil
}

// serveLogs streams a container's log file in the order written, as
// upstream's kubelet does: rotated files first, then the live one, and with
// follow, new lines until the container stops.
func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	ns, podName, name := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseLogOptions(r, k.clock.Now())
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	pod, err := k.findPod(ns, podName)
	if err != nil {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	if findContainer(pod, name) == nil && ephemeralContainer(pod, name) == nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			fmt.Sprintf("container %s is not valid for pod %s", name, podName))
		return
	}
	state, err := k.runtime.podState(r.Context(), pod.UID)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	inst := state.instances(name, "")
	idx := 0
	if opts.previous {
		idx = 1
	}
	if len(inst) <= idx {
		msg := fmt.Sprintf("container %q in pod %q is waiting to start: %s", name, podName, waitingReasonOf(pod, name))
		if opts.previous {
			msg = fmt.Sprintf("previous terminated container %q in pod %q not found", name, podName)
		}
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, msg)
		return
	}
	st, err := k.runtime.containerStatus(r.Context(), inst[idx].Id)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	out := io.Writer(w)
	if opts.limitBytes >= 0 {
		out = &limitWriter{w: w, left: opts.limitBytes}
	}
	lw := &logWriter{out: out, opts: opts, flusher: flusherOf(w)}
	files := append(rotatedLogs(st.LogPath), st.LogPath)
	if opts.tailLines >= 0 {
		lw.tail = opts.tailLines
		lw.buffered = true
	}
	var offset int64
	for i, f := range files {
		n, err := lw.copyFile(f, 0)
		if i == len(files)-1 {
			offset = n
		}
		if err != nil && !os.IsNotExist(err) {
			return
		}
	}
	if err := lw.flushTail(); err != nil {
		return
	}
	running := st.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	if opts.follow && running && !opts.previous {
		k.followLog(r.Context(), lw, st.Id, st.LogPath, offset)
	}
}

func waitingReasonOf(pod *v1.Pod, name string) string {
	for _, cs := range append(append([]v1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if cs.Name == name && cs.State.Waiting != nil {
			return cs.State.Waiting.Reason
		}
	}
	return "ContainerCreating"
}

// rotatedLogs are the rotated files of a log, oldest first
// (<path>.<timestamp>).
func rotatedLogs(path string) []string {
	matches, _ := filepath.Glob(path + ".*")
	sort.Strings(matches)
	return matches
}

// followLog tails the live file until the container stops or the client
// goes away; a rotation (the file replaced) is followed into the new file.
func (k *Kubelet) followLog(ctx context.Context, lw *logWriter, id, path string, offset int64) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		info, err := os.Stat(path)
		if err == nil && info.Size() < offset {
			offset = 0 // rotated: the live file starts over
		}
		n, err := lw.copyFile(path, offset)
		if err != nil && !os.IsNotExist(err) {
			return
		}
		offset = n
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			st, err := k.runtime.containerStatus(ctx, id)
			if err != nil || st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				_, _ = lw.copyFile(path, offset) // the last lines
				return
			}
		}
	}
}

// logWriter decodes CRI log lines ("<time> <stream> <P|F> <text>") and
// writes their text, optionally with timestamps, after sinceTime, and with
// tailLines keeping only the last lines.
type logWriter struct {
	out      io.Writer
	flusher  http.Flusher
	opts     logOptions
	buffered bool
	tail     int64
	lines    [][]byte // buffered output lines for tailLines
	partial  []byte   // buffered: the output of a line still open (P entries)
	open     bool     // streaming: a line is open, its prefix written
	scratch  []byte   // streaming: one entry's output
}

// copyFile writes the file's complete lines from offset and returns the
// offset after the last complete line.
func (lw *logWriter) copyFile(path string, offset int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return offset, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	rd := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			break // an incomplete last line is read again next time
		}
		offset += int64(len(line))
		if werr := lw.entry(line[:len(line)-1]); werr != nil {
			return offset, werr
		}
	}
	if !lw.buffered && lw.flusher != nil {
		lw.flusher.Flush()
	}
	return offset, nil
}

func (lw *logWriter) entry(line []byte) error {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return nil
	}
	_, rest, ok = bytes.Cut(rest, []byte{' '}) // stream
	if !ok {
		return nil
	}
	tag, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return nil
	}
	if !lw.opts.since.IsZero() {
		if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil && t.Before(lw.opts.since) {
			return nil
		}
	}
	partial := bytes.Equal(tag, []byte("P"))
	if lw.buffered {
		if len(lw.partial) == 0 && lw.opts.timestamps {
			lw.partial = append(append(lw.partial, ts...), ' ')
		}
		lw.partial = append(lw.partial, text...)
		if partial {
			return nil
		}
		lw.lines = append(lw.lines, append(lw.partial, '\n'))
		lw.partial = nil
		if int64(len(lw.lines)) > lw.tail {
			lw.lines = lw.lines[1:]
		}
		return nil
	}
	// As upstream, a partial entry's text is written at once, so output
	// that ends without a newline is shown; the timestamp prefixes a line
	// only where it starts.
	out := lw.scratch[:0]
	if !lw.open && lw.opts.timestamps {
		out = append(append(out, ts...), ' ')
	}
	out = append(out, text...)
	if !partial {
		out = append(out, '\n')
	}
	lw.open = partial
	lw.scratch = out
	_, err := lw.out.Write(out)
	return err
}

// flushTail writes the lines kept for tailLines and switches to streaming.
func (lw *logWriter) flushTail() error {
	if !lw.buffered {
		return nil
	}
	lw.buffered = false
	open := len(lw.partial) > 0 && lw.tail > 0
	if open && int64(len(lw.lines)) >= lw.tail {
		lw.lines = lw.lines[1:] // the open line is one of the tail's
	}
	for _, l := range lw.lines {
		if _, err := lw.out.Write(l); err != nil {
			return err
		}
	}
	lw.lines = nil
	if open {
		// The last line is still open: show what it has, as upstream.
		if _, err := lw.out.Write(lw.partial); err != nil {
			return err
		}
		lw.partial, lw.open = nil, true
	}
	if lw.flusher != nil {
		lw.flusher.Flush()
	}
	return nil
}

// limitWriter stops the stream after limitBytes.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && l.left <= 0 {
		err = io.EOF
	}
	return n, err
}

func flusherOf(w http.ResponseWriter) http.Flusher {
	f, _ := w.(http.Flusher)
	return f
}
