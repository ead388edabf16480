// Package job runs Jobs to completion: it keeps up to parallelism pods
// running until completions pods have succeeded (NonIndexed), or until
// every completion index has (Indexed) or a success policy rule holds; it
// recreates failed pods with an exponential delay up to backoffLimit,
// enforces activeDeadlineSeconds, suspend and the pod failure policy, sets
// SuccessCriteriaMet/FailureTarget and then, once the job's pods are
// gone, Complete/Failed, and deletes finished jobs after
// ttlSecondsAfterFinished.
package job

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersbatchv1 "k8s.io/client-go/listers/batch/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

var gvk = batchv1.SchemeGroupVersion.WithKind("Job")

// Pod recreation backoff after failures, as upstream.
const (
	podBackoffBase = 10 * time.Second
	podBackoffMax  = 6 * time.Minute
)

// Controller reconciles Jobs.
type Controller struct {
	client       kubernetes.Interface
	jobLister    listersbatchv1.JobLister
	podLister    listerscorev1.PodLister
	synced       []cache.InformerSynced
	queue        workqueue.TypedRateLimitingInterface[string]
	expectations *controllerutil.Expectations
	recorder     record.EventRecorder
	events       record.EventBroadcaster
	log          *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	jobs := factory.Batch().V1().Jobs()
	pods := factory.Core().V1().Pods()
	c := &Controller{
		client: client, jobLister: jobs.Lister(), podLister: pods.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{jobs.Informer().HasSynced, pods.Informer().HasSynced},
		queue:  controllerutil.NewQueue("job"),
	}
	c.expectations = controllerutil.NewExpectationsWithClock(controllerutil.ClockRef{P: &c.Clock})
	c.events, c.recorder = controllerutil.NewRecorder("job-controller")
	enqueue := func(o any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
			c.queue.Add(key)
		}
	}
	_, _ = jobs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) },
		DeleteFunc: func(o any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
				c.expectations.Delete(key)
			}
		}})
	// ownerKey is the key of the Job controlling p, "" for none.
	ownerKey := func(p *corev1.Pod) string {
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != gvk.Kind || ref.APIVersion != gvk.GroupVersion().String() {
			return ""
		}
		return p.Namespace + "/" + ref.Name
	}
	podEvent := func(o any, adds, dels int) {
		o = informerutil.Unwrap(o)
		p, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		key := ownerKey(p)
		if key == "" {
			// Only a true orphan may be adopted: a pod of a ReplicaSet (or
			// any other controller) costs no listing of Jobs.
			if dels == 0 && metav1.GetControllerOf(p) == nil {
				c.enqueueMatching(p)
			}
			return
		}
		c.expectations.Observed(key, adds, dels)
		c.queue.Add(key)
	}
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { podEvent(o, 1, 0) },
		UpdateFunc: func(old, o any) {
			// A pod released by its Job (or given to another) is news to
			// the Job it left.
			if prev, ok := old.(*corev1.Pod); ok {
				if key := ownerKey(prev); key != "" && key != ownerKey(o.(*corev1.Pod)) {
					c.queue.Add(key)
				}
			}
			podEvent(o, 0, 0)
		},
		DeleteFunc: func(o any) { podEvent(o, 0, 1) },
	})
	return c
}

// enqueueMatching queues the Jobs of p's namespace whose selector matches
// the orphan p: one of them adopts it, as upstream's getPodJobs.
func (c *Controller) enqueueMatching(p *corev1.Pod) {
	if p.DeletionTimestamp != nil {
		return
	}
	jobs, err := c.jobLister.Jobs(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, j := range jobs {
		sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		c.queue.Add(j.Namespace + "/" + j.Name)
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 4, c.sync, c.log)
}

func finishedCondition(j *batchv1.Job) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// interimCondition returns the SuccessCriteriaMet or FailureTarget
// condition a job got before its pods were all gone, if any.
func interimCondition(j *batchv1.Job) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if (c.Type == batchv1.JobSuccessCriteriaMet || c.Type == batchv1.JobFailureTarget) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	job, err := c.jobLister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	job = job.DeepCopy()
	if done := finishedCondition(job); done != nil {
		return c.expireFinished(ctx, job, done.LastTransitionTime.Time)
	}
	if job.DeletionTimestamp != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil
	}
	nsPods, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := controllerutil.ClaimPods(ctx, c.client, job, gvk, sel, nsPods, func(ctx context.Context) (metav1.Object, error) {
		return c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	})
	if err != nil {
		return err
	}
	var active, succeeded, failed []*corev1.Pod
	terminating := int32(0)
	for _, p := range pods {
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			succeeded = append(succeeded, p)
		case p.Status.Phase == corev1.PodFailed:
			if !c.ignoredFailure(job, p) {
				failed = append(failed, p)
			}
		case p.DeletionTimestamp == nil:
			active = append(active, p)
		default:
			terminating++
		}
	}
	now := c.Clock.Now()
	st := job.Status.DeepCopy()
	st.Terminating = &terminating
	if st.StartTime == nil && !ptrBool(job.Spec.Suspend) {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	interim := interimCondition(job)
	successMet := interim != nil && interim.Type == batchv1.JobSuccessCriteriaMet
	if !successMet {
		// Pods removed because the job met its success criteria are not
		// failures.
		st.Failed = max(st.Failed, int32(len(failed)))
	}
	indexed := job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
	completions := job.Spec.Completions
	var doneIndexes map[int]bool
	var fi *indexFailures // per-index backoff state, for Indexed jobs with backoffLimitPerIndex
	if indexed {
		// Indexes already recorded stay succeeded after their pods go.
		doneIndexes = parseIndexes(st.CompletedIndexes, int(ptrInt(completions, 1)))
		for _, p := range succeeded {
			if i, ok := completionIndex(p); ok && i < int(ptrInt(completions, 1)) {
				doneIndexes[i] = true
			}
		}
		st.Succeeded = int32(len(doneIndexes))
		st.CompletedIndexes = formatIndexes(doneIndexes)
		if job.Spec.BackoffLimitPerIndex != nil {
			fi = perIndexFailures(job, failed, ptrString(st.FailedIndexes), int(ptrInt(completions, 1)))
			failedIndexes := formatIndexes(fi.failed)
			st.FailedIndexes = &failedIndexes
		}
	} else {
		st.Succeeded = max(st.Succeeded, int32(len(succeeded)))
	}
	ready := int32(0)
	for _, p := range active {
		if controllerutil.IsPodReady(p) {
			ready++
		}
	}
	st.Ready = &ready

	// A job that met its success criteria or a failure condition keeps
	// the interim condition until its remaining pods are gone.
	if interim != nil {
		return c.finish(ctx, job, st, active, interim.Type, interim.Reason, interim.Message, now)
	}
	if msg := c.failedByPolicy(job, failed); msg != "" {
		return c.finish(ctx, job, st, active, batchv1.JobFailureTarget, batchv1.JobReasonPodFailurePolicy, msg, now)
	}
	switch {
	case job.Spec.BackoffLimit != nil && st.Failed > *job.Spec.BackoffLimit:
		return c.finish(ctx, job, st, active, batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded,
			"Job has reached the specified backoff limit", now)
	case job.Spec.ActiveDeadlineSeconds != nil && st.StartTime != nil &&
		now.Sub(st.StartTime.Time) >= time.Duration(*job.Spec.ActiveDeadlineSeconds)*time.Second:
		return c.finish(ctx, job, st, active, batchv1.JobFailureTarget, batchv1.JobReasonDeadlineExceeded,
			"Job was active longer than specified deadline", now)
	}
	if fi != nil {
		if reason, msg := perIndexOutcome(job, fi, doneIndexes, int(ptrInt(completions, 1))); reason != "" {
			return c.finish(ctx, job, st, active, batchv1.JobFailureTarget, reason, msg, now)
		}
	}
	if indexed && job.Spec.SuccessPolicy != nil {
		if msg, ok := matchSuccessPolicy(job.Spec.SuccessPolicy, int(ptrInt(completions, 1)), doneIndexes); ok {
			return c.finish(ctx, job, st, active, batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy, msg, now)
		}
	}
	if completions != nil && st.Succeeded >= *completions || (completions == nil && len(succeeded) > 0 && len(active) == 0) {
		return c.finish(ctx, job, st, active, batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached,
			"Reached expected number of succeeded pods", now)
	}
	if ptrBool(job.Spec.Suspend) {
		c.deletePods(ctx, job, active)
		st.Active = 0
		setCondition(st, batchv1.JobSuspended, "JobSuspended", "Job suspended", now)
		return c.writeStatus(ctx, job, st)
	}
	removeCondition(st, batchv1.JobSuspended)
	st.Active = int32(len(active))

	if c.expectations.Satisfied(key) {
		if delay := backoffDelay(len(failed), lastFailure(failed), now); fi == nil && delay > 0 {
			c.queue.AddAfter(key, delay)
		} else if err := c.createPods(ctx, key, job, active, succeeded, doneIndexes, fi, now); err != nil {
			_ = c.writeStatus(ctx, job, st)
			return err
		}
	}
	if d := job.Spec.ActiveDeadlineSeconds; d != nil && st.StartTime != nil {
		c.queue.AddAfter(key, st.StartTime.Add(time.Duration(*d)*time.Second).Sub(c.Clock.Now())+time.Second)
	}
	return c.writeStatus(ctx, job, st)
}

// finish ends a job in two steps, as upstream does since 1.31: the
// interim condition (SuccessCriteriaMet or FailureTarget) is recorded at
// once and the remaining pods are deleted; the terminal condition
// (Complete or Failed, same reason and message) follows once no pod of
// the job is running or terminating any more.
func (c *Controller) finish(ctx context.Context, job *batchv1.Job, st *batchv1.JobStatus, active []*corev1.Pod,
	interim batchv1.JobConditionType, reason, msg string, now time.Time) error {
	first := interimCondition(job) == nil
	c.deletePods(ctx, job, active)
	// Deleted pods terminate before they are gone.
	*st.Terminating += int32(len(active))
	st.Active = 0
	zero := int32(0)
	st.Ready = &zero
	setCondition(st, interim, reason, msg, now)
	final := batchv1.JobComplete
	if interim == batchv1.JobFailureTarget {
		final = batchv1.JobFailed
	}
	if first && final == batchv1.JobFailed {
		c.recorder.Event(job, corev1.EventTypeWarning, reason, msg)
	}
	if *st.Terminating == 0 {
		setCondition(st, final, reason, msg, now)
		if final == batchv1.JobComplete {
			t := metav1.NewTime(now)
			st.CompletionTime = &t
			c.recorder.Event(job, corev1.EventTypeNormal, "Completed", "Job completed")
		}
	}
	return c.writeStatus(ctx, job, st)
}

// createPods starts the pods the job still needs. With per-index backoff
// (fi), failed indexes get no more pods and each index waits out its own
// backoff.
func (c *Controller) createPods(ctx context.Context, key string, job *batchv1.Job, active, succeeded []*corev1.Pod,
	doneIndexes map[int]bool, fi *indexFailures, now time.Time) error {
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	var want []int // completion indexes, or -1 for NonIndexed pods
	if doneIndexes != nil {
		running := map[int]bool{}
		for _, p := range active {
			if i, ok := completionIndex(p); ok {
				running[i] = true
			}
		}
		var wait time.Duration
		for i := 0; i < int(ptrInt(job.Spec.Completions, 1)) && len(want)+len(active) < int(parallelism); i++ {
			if doneIndexes[i] || running[i] {
				continue
			}
			if fi != nil {
				if fi.failed[i] {
					continue
				}
				if d := fi.retryIn(i, now); d > 0 {
					if wait == 0 || d < wait {
						wait = d // the soonest index to retry
					}
					continue
				}
			}
			want = append(want, i)
		}
		if wait > 0 {
			c.queue.AddAfter(key, wait)
		}
	} else {
		remaining := parallelism
		if job.Spec.Completions != nil {
			remaining = min(parallelism, *job.Spec.Completions-int32(len(succeeded)))
		}
		for n := int(remaining) - len(active); n > 0; n-- {
			want = append(want, -1)
		}
	}
	if len(want) == 0 {
		return nil
	}
	c.expectations.Expect(key, len(want), 0)
	var firstErr error
	for _, idx := range want {
		if err := c.createPod(ctx, job, idx, fi); err != nil {
			c.expectations.Observed(key, 1, 0)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

const completionIndexAnnotation = batchv1.JobCompletionIndexAnnotation

func (c *Controller) createPod(ctx context.Context, job *batchv1.Job, index int, fi *indexFailures) error {
	t := job.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: job.Name + "-", Namespace: job.Namespace,
			Labels: t.Labels, Annotations: t.Annotations, Finalizers: t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{controllerutil.ControllerRef(job, gvk)},
		},
		Spec: t.Spec,
	}
	if index >= 0 {
		idx := strconv.Itoa(index)
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[completionIndexAnnotation] = idx
		if fi != nil {
			pod.Annotations[indexFailureCountAnnotation] = strconv.Itoa(int(fi.count[index]))
		}
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[batchv1.JobCompletionIndexAnnotation] = idx
		pod.GenerateName = fmt.Sprintf("%s-%d-", job.Name, index)
		if pod.Spec.Hostname == "" {
			pod.Spec.Hostname = fmt.Sprintf("%s-%d", job.Name, index)
		}
		for i := range pod.Spec.Containers {
			pod.Spec.Containers[i].Env = append(pod.Spec.Containers[i].Env, corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", Value: idx})
		}
	}
	created, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return nil
}

func (c *Controller) deletePods(ctx context.Context, job *batchv1.Job, pods []*corev1.Pod) {
	for _, p := range pods {
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err == nil {
			c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
		}
	}
}

func completionIndex(p *corev1.Pod) (int, bool) {
	i, err := strconv.Atoi(p.Annotations[completionIndexAnnotation])
	return i, err == nil
}

// formatIndexes renders completed indexes as upstream: "0-2,4".
func formatIndexes(done map[int]bool) string {
	idx := make([]int, 0, len(done))
	for i := range done {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		} else {
			parts = append(parts, strconv.Itoa(idx[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func lastFailure(failed []*corev1.Pod) time.Time {
	var t time.Time
	for _, p := range failed {
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.State.Terminated; term != nil && term.FinishedAt.After(t) {
				t = term.FinishedAt.Time
			}
		}
		if t.IsZero() {
			t = p.CreationTimestamp.Time
		}
	}
	return t
}

// backoffDelay is the wait before replacing a failed pod: 10 s doubling
// per failure, at most 6 minutes, counted from the last failure.
func backoffDelay(failures int, last, now time.Time) time.Duration {
	if failures == 0 || last.IsZero() {
		return 0
	}
	d := podBackoffBase
	for i := 1; i < failures && d < podBackoffMax; i++ {
		d *= 2
	}
	d = min(d, podBackoffMax)
	return max(last.Add(d).Sub(now), 0)
}

func (c *Controller) expireFinished(ctx context.Context, job *batchv1.Job, finished time.Time) error {
	ttl := job.Spec.TTLSecondsAfterFinished
	if ttl == nil || job.DeletionTimestamp != nil {
		return nil
	}
	at := finished.Add(time.Duration(*ttl) * time.Second)
	if wait := at.Sub(c.Clock.Now()); wait > 0 {
		c.queue.AddAfter(job.Namespace+"/"+job.Name, wait)
		return nil
	}
	bg := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &job.UID},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, reason, msg string, now time.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != corev1.ConditionTrue || st.Conditions[i].Reason != reason {
				st.Conditions[i] = batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
					LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)})
}

func removeCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) {
	out := st.Conditions[:0]
	for _, c := range st.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	st.Conditions = out
}

func (c *Controller) writeStatus(ctx context.Context, job *batchv1.Job, st *batchv1.JobStatus) error {
	if equality.Semantic.DeepEqual(job.Status, *st) {
		return nil
	}
	job.Status = *st
	_, err := c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, job, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func ptrBool(p *bool) bool { return p != nil && *p }

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ptrInt(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}
