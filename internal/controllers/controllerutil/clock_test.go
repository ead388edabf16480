package controllerutil

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func TestExpectationsExpireOnClock(t *testing.T) {
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := NewExpectationsWithClock(clk)
	e.Expect("ns/a", 2, 0)
	if e.Satisfied("ns/a") {
		t.Fatal("satisfied right after Expect with adds outstanding")
	}
	clk.SetTime(clk.Now().Add(expectationTimeout))
	if e.Satisfied("ns/a") {
		t.Fatal("satisfied at exactly the timeout; want only after it")
	}
	clk.SetTime(clk.Now().Add(time.Second))
	if !e.Satisfied("ns/a") {
		t.Fatal("not satisfied after the timeout passed")
	}
	// A fresh Expect restarts the timeout from the clock's current time.
	e.Expect("ns/a", 1, 0)
	if e.Satisfied("ns/a") {
		t.Fatal("re-expecting did not restart the timeout")
	}
	e.Observed("ns/a", 1, 0)
	if !e.Satisfied("ns/a") {
		t.Fatal("not satisfied after every add was observed")
	}
}

func TestIsPodAvailableAfterMinReadySeconds(t *testing.T) {
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{
		Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(clk.Now()),
	}}}}
	if !IsPodAvailable(p, 0, clk.Now()) {
		t.Fatal("ready pod with minReadySeconds=0 not available")
	}
	if IsPodAvailable(p, 10, clk.Now()) {
		t.Fatal("available immediately despite minReadySeconds=10")
	}
	clk.SetTime(clk.Now().Add(10 * time.Second))
	if IsPodAvailable(p, 10, clk.Now()) {
		t.Fatal("available at exactly minReadySeconds; want strictly after")
	}
	clk.SetTime(clk.Now().Add(time.Second))
	if !IsPodAvailable(p, 10, clk.Now()) {
		t.Fatal("not available after minReadySeconds passed")
	}
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	if IsPodAvailable(p, 10, clk.Now()) {
		t.Fatal("not-ready pod reported available")
	}
}
