package flowcontrol

import (
	"sync"
	"time"
)

// maxRetryAfter caps the Retry-After a level advises.
const maxRetryAfter = 60

// retryAfter adapts the Retry-After of a level's rejections to how many it
// drops, as upstream: it starts at one second, doubles (at most once per
// current value) while the last value-seconds saw at least three drops per
// second of it, and shrinks by one when they saw fewer than one per second.
type retryAfter struct {
	mu       sync.Mutex
	value    int64
	lastBump int64
	// drops counts rejections per second for the last seconds.
	drops [maxRetryAfter * 2]struct{ sec, n int64 }
	cur   int64 // the second last counted
}

// record notes a rejection at now and returns the Retry-After to send.
func (r *retryAfter) record(now time.Time) int64 {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.value == 0 {
		r.value = 1
	}
	b := &r.drops[sec%int64(len(r.drops))]
	if b.sec != sec {
		b.sec, b.n = sec, 0
	}
	b.n++
	if sec != r.cur {
		r.cur = sec
		r.adjustLocked(sec)
	}
	return r.value
}

func (r *retryAfter) adjustLocked(sec int64) {
	var n int64
	for _, b := range r.drops {
		if b.sec >= sec-r.value && b.sec < sec {
			n += b.n
		}
	}
	switch {
	case n >= 3*r.value && sec-r.lastBump >= r.value:
		r.value = min(r.value*2, maxRetryAfter)
		r.lastBump = sec
	case n < r.value && r.value > 1:
		r.value--
	}
}
