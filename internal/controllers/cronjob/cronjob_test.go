package cronjob

import (
	"context"
	"log/slog"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testserver.Eventually(t, what, cond)
}

func TestCronJobSchedulesWithInjectedClock(t *testing.T) {
	ts := testserver.Start(t)
	c := ts.Client
	ctx, cancel := context.WithCancel(context.Background())
	clk := testingclock.NewFakeClock(time.Now())
	f := informers.NewSharedInformerFactory(c, 0)
	ctrl := New(c, f, slog.New(slog.DiscardHandler))
	ctrl.Clock = clk
	f.Start(ctx.Done())
	done := make(chan struct{})
	go func() { ctrl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; f.Shutdown() })

	one := int32(1)
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "tick"},
		Spec: batchv1.CronJobSpec{
			Schedule: "*/5 * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent, SuccessfulJobsHistoryLimit: &one,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			}}}},
		},
	}
	if _, err := c.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	jobs := func() []batchv1.Job {
		l, err := c.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	kick := func() { ctrl.queue.Add("default/tick") }
	time.Sleep(300 * time.Millisecond)
	if n := len(jobs()); n != 0 {
		t.Fatalf("%d jobs before the schedule came due", n)
	}
	clk.Step(5 * time.Minute)
	kick()
	eventually(t, "first job", func() bool { return len(jobs()) == 1 })
	first := jobs()[0]
	if first.Annotations[ScheduledTimestampAnnotation] == "" || metav1.GetControllerOf(&first) == nil {
		t.Fatalf("job %+v lacks its scheduled time or owner", first.ObjectMeta)
	}
	// Forbid: while the first runs, the next due time is skipped.
	clk.Step(5 * time.Minute)
	kick()
	time.Sleep(500 * time.Millisecond)
	if n := len(jobs()); n != 1 {
		t.Fatalf("Forbid started a concurrent job: %d jobs", n)
	}
	// Finish the first; the next due time starts a new one and the
	// history limit of 1 removes the first.
	now := metav1.Now()
	first.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
	}
	first.Status.StartTime, first.Status.CompletionTime = &now, &now
	first.Status.Succeeded = 1
	if _, err := c.BatchV1().Jobs("default").UpdateStatus(ctx, &first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(5 * time.Minute)
	kick()
	eventually(t, "second job", func() bool {
		for _, j := range jobs() {
			if j.Name != first.Name {
				return true
			}
		}
		return false
	})
	clk.Step(5 * time.Minute)
	second := ""
	for _, j := range jobs() {
		if j.Name != first.Name {
			second = j.Name
		}
	}
	sj, _ := c.BatchV1().Jobs("default").Get(ctx, second, metav1.GetOptions{})
	sj.Status.Conditions = first.Status.Conditions
	sj.Status.StartTime, sj.Status.CompletionTime, sj.Status.Succeeded = &now, &now, 1
	if _, err := c.BatchV1().Jobs("default").UpdateStatus(ctx, sj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kick()
	eventually(t, "history trimmed to one successful job", func() bool {
		for _, j := range jobs() {
			if j.Name == first.Name {
				return false
			}
		}
		return true
	})
	got, _ := c.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
	if got.Status.LastScheduleTime == nil || got.Status.LastSuccessfulTime == nil {
		t.Fatalf("status %+v", got.Status)
	}
}
