// Package cronjob creates Jobs on a cron schedule, in the CronJob's time
// zone, honouring concurrencyPolicy, startingDeadlineSeconds and suspend,
// and keeps the configured number of finished jobs.
package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"
	_ "time/tzdata" // CronJob time zones must not depend on the host's zoneinfo

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersbatchv1 "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

var gvk = batchv1.SchemeGroupVersion.WithKind("CronJob")

// ScheduledTimestampAnnotation records when a job was due.
const ScheduledTimestampAnnotation = batchv1.CronJobScheduledTimestampAnnotation

// Controller reconciles CronJobs.
type Controller struct {
	client    kubernetes.Interface
	cjLister  listersbatchv1.CronJobLister
	jobLister listersbatchv1.JobLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
	events    record.EventBroadcaster
	log       *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	cjs := factory.Batch().V1().CronJobs()
	jobs := factory.Batch().V1().Jobs()
	c := &Controller{
		client: client, cjLister: cjs.Lister(), jobLister: jobs.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{cjs.Informer().HasSynced, jobs.Informer().HasSynced},
		queue:  controllerutil.NewQueue("cronjob"),
	}
	c.events, c.recorder = controllerutil.NewRecorder("cronjob-controller")
	_, _ = cjs.Informer().AddEventHandler(informerutil.OnAddOrUpdate(controllerutil.EnqueueKey(c.queue)))
	_, _ = jobs.Informer().AddEventHandler(informerutil.OnAnyChange(controllerutil.EnqueueController(c.queue, gvk.GroupKind())))
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return
	}
	// Schedules come due without any object changing: look at every
	// cron job regularly, besides the precise requeues.
	go wait.UntilWithContext(ctx, func(context.Context) {
		all, _ := c.cjLister.List(labels.Everything())
		for _, cj := range all {
			c.queue.Add(cj.Namespace + "/" + cj.Name)
		}
	}, 10*time.Second)
	controllerutil.RunWorkers(ctx, c.queue, 1, c.sync, c.log)
}

func isFinished(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true, c.Type
		}
	}
	return false, ""
}

// maxMissed bounds how many missed start times are counted.
const maxMissed = 100

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cj, err := c.cjLister.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cj = cj.DeepCopy()
	if cj.DeletionTimestamp != nil {
		return nil
	}
	jobs, err := c.ownedJobs(cj)
	if err != nil {
		return err
	}
	st := cj.Status.DeepCopy()
	st.Active = nil
	var active []*batchv1.Job
	for _, j := range jobs {
		done, typ := isFinished(j)
		if !done {
			active = append(active, j)
			st.Active = append(st.Active, corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name, UID: j.UID, ResourceVersion: j.ResourceVersion})
			continue
		}
		if typ == batchv1.JobComplete && j.Status.CompletionTime != nil && (st.LastSuccessfulTime == nil || st.LastSuccessfulTime.Before(j.Status.CompletionTime)) {
			st.LastSuccessfulTime = j.Status.CompletionTime
		}
	}
	if err := c.cleanupHistory(ctx, cj, jobs); err != nil {
		return err
	}

	loc := time.Local
	if cj.Spec.TimeZone != nil {
		if loc, err = time.LoadLocation(*cj.Spec.TimeZone); err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %v", *cj.Spec.TimeZone, err)
			return c.writeStatus(ctx, cj, st)
		}
	}
	sched, err := ParseSchedule(cj.Spec.Schedule)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %v", cj.Spec.Schedule, err)
		return c.writeStatus(ctx, cj, st)
	}
	now := c.Clock.Now().In(loc)
	since := cj.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		since = st.LastScheduleTime.Time
	}
	// The latest due time in (since, now], counting the ones missed.
	var due time.Time
	missed := 0
	for t := sched.Next(since.In(loc)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		due = t
		if missed++; missed > maxMissed {
			break
		}
	}
	next := sched.Next(now)
	if !next.IsZero() {
		c.queue.AddAfter(key, next.Sub(now)+100*time.Millisecond)
	}
	if due.IsZero() || (cj.Spec.Suspend != nil && *cj.Spec.Suspend) {
		return c.writeStatus(ctx, cj, st)
	}
	if missed > maxMissed {
		c.recorder.Event(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times; set or decrease .spec.startingDeadlineSeconds or check clock skew")
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && now.Sub(due) > time.Duration(*d)*time.Second {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", due.Format(time.RFC1123Z))
		return c.writeStatus(ctx, cj, st)
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(active) > 0 {
			c.recorder.Event(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return c.writeStatus(ctx, cj, st) // retried at the next due time
		}
	case batchv1.ReplaceConcurrent:
		bg := metav1.DeletePropagationBackground
		for _, j := range active {
			if err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %s", j.Name)
		}
		st.Active = nil
	}
	job, err := c.createJob(ctx, cj, due)
	if err != nil {
		return err
	}
	if job != nil {
		st.Active = append(st.Active, corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: job.Namespace, Name: job.Name, UID: job.UID, ResourceVersion: job.ResourceVersion})
	}
	t := metav1.NewTime(due)
	st.LastScheduleTime = &t
	return c.writeStatus(ctx, cj, st)
}

func (c *Controller) ownedJobs(cj *batchv1.CronJob) ([]*batchv1.Job, error) {
	all, err := c.jobLister.Jobs(cj.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cj.UID {
			out = append(out, j)
		}
	}
	return out, nil
}

// createJob starts the job due at t; its name derives from t, so a retry
// never starts a second one.
func (c *Controller) createJob(ctx context.Context, cj *batchv1.CronJob, t time.Time) (*batchv1.Job, error) {
	tmpl := cj.Spec.JobTemplate.DeepCopy()
	annotations := tmpl.Annotations
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[ScheduledTimestampAnnotation] = t.UTC().Format(time.RFC3339)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", cj.Name, t.Unix()/60), Namespace: cj.Namespace,
			Labels: tmpl.Labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{controllerutil.ControllerRef(cj, gvk)},
		},
		Spec: tmpl.Spec,
	}
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil, nil
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return nil, err
	}
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %s", created.Name)
	return created, nil
}

// cleanupHistory keeps the newest successfulJobsHistoryLimit completed and
// failedJobsHistoryLimit failed jobs.
func (c *Controller) cleanupHistory(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	var ok, failed []*batchv1.Job
	for _, j := range jobs {
		switch _, typ := isFinished(j); typ {
		case batchv1.JobComplete:
			ok = append(ok, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	limit := func(p *int32, d int32) int {
		if p == nil {
			return int(d)
		}
		return int(*p)
	}
	bg := metav1.DeletePropagationBackground
	for _, set := range []struct {
		jobs []*batchv1.Job
		keep int
	}{{ok, limit(cj.Spec.SuccessfulJobsHistoryLimit, 3)}, {failed, limit(cj.Spec.FailedJobsHistoryLimit, 1)}} {
		sort.Slice(set.jobs, func(i, j int) bool { return scheduledAt(set.jobs[i]).Before(scheduledAt(set.jobs[j])) })
		for i := 0; i < len(set.jobs)-set.keep; i++ {
			j := set.jobs[i]
			if err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Deleted finished job %s", j.Name)
		}
	}
	return nil
}

func (c *Controller) writeStatus(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus) error {
	if equality.Semantic.DeepEqual(cj.Status, *st) {
		return nil
	}
	cj.Status = *st
	_, err := c.client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// scheduledAt is when a job was due (creation timestamps have only second
// precision, too coarse to order jobs started in quick succession).
func scheduledAt(j *batchv1.Job) time.Time {
	if t, err := time.Parse(time.RFC3339, j.Annotations[ScheduledTimestampAnnotation]); err == nil {
		return t
	}
	return j.CreationTimestamp.Time
}
