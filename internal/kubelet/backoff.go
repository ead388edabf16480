package kubelet

import (
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// backoff tracks per-container restart and image-pull delays: the first
// retry is immediate, then the delay doubles from initial up to max.
type backoff struct {
	mu           sync.Mutex
	initial, max time.Duration
	clock        clock.PassiveClock
	entries      map[string]*backoffEntry
}

type backoffEntry struct {
	delay time.Duration
	last  time.Time // when the delay started counting
}

func newBackoff(initial, max time.Duration, clk clock.PassiveClock) *backoff {
	return &backoff{initial: initial, max: max, clock: clk, entries: map[string]*backoffEntry{}}
}

func backoffKey(uid types.UID, name string) string { return string(uid) + "/" + name }

// remaining is how long to wait, counting the current delay from since.
func (b *backoff) remaining(key string, since time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return 0
	}
	return max(since.Add(e.delay).Sub(b.clock.Now()), 0)
}

// sinceLast is how long is left of the delay that began at the last retry.
func (b *backoff) sinceLast(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return 0
	}
	return max(e.last.Add(e.delay).Sub(b.clock.Now()), 0)
}

// pullWait is when to sync again after a failed pull.
func (b *backoff) pullWait(key string) time.Duration {
	return max(b.sinceLast(key), 100*time.Millisecond)
}

// next records a retry at time at and grows the delay.
func (b *backoff) next(key string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		b.entries[key] = &backoffEntry{delay: b.initial, last: at}
		return
	}
	e.delay = min(2*e.delay, b.max)
	e.last = at
}

func (b *backoff) current(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[key]; ok {
		return e.delay
	}
	return 0
}

func (b *backoff) reset(key string) {
	b.mu.Lock()
	delete(b.entries, key)
	b.mu.Unlock()
}

func (b *backoff) forgetPod(uid types.UID) {
	prefix := string(uid) + "/"
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if strings.HasPrefix(k, prefix) {
			delete(b.entries, k)
		}
	}
}
