package kubelet

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestBackoffDoublesToMax(t *testing.T) {
	now := time.Now()
	clk := clocktesting.NewFakeClock(now)
	b := newBackoff(10*time.Second, 40*time.Second, clk)
	key := backoffKey("uid", "c")
	if w := b.remaining(key, now); w != 0 {
		t.Fatalf("first restart waits %s, want immediately", w)
	}
	var delays []time.Duration
	for i := 0; i < 5; i++ {
		b.next(key, now)
		delays = append(delays, b.current(key))
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v", delays, want)
		}
	}
	if w := b.remaining(key, now.Add(-30*time.Second)); w != 10*time.Second {
		t.Errorf("30 s into a 40 s delay, %s remain", w)
	}
	// The last retry's delay runs out on the kubelet's clock.
	clk.Step(39 * time.Second)
	if w := b.sinceLast(key); w != time.Second {
		t.Errorf("39 s into a 40 s delay, %s left", w)
	}
	clk.Step(2 * time.Second)
	if w := b.sinceLast(key); w != 0 {
		t.Errorf("delay over, %s left", w)
	}
	b.forgetPod("uid")
	if b.current(key) != 0 {
		t.Error("forgetPod kept the entry")
	}
}
