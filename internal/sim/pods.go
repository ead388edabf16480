package sim

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// RunSecondsAnnotation makes a pod with restartPolicy Never or OnFailure
// (or owned by a Job) succeed that many seconds after it started.
const RunSecondsAnnotation = "skiff.dev/sim-run-seconds"

// jobRunTime is how long a Job's pod runs without the annotation.
const jobRunTime = time.Second

// podRunner drives the lifecycle of the pods bound to the simulated nodes:
// one shared informer over all bound pods, and a rate-limited queue of pod
// keys worked by a few workers, which write pod status.
type podRunner struct {
	s       *sim
	factory informers.SharedInformerFactory
	lister  corelisters.PodLister
	queue   workqueue.TypedRateLimitingInterface[string]
}

func (s *sim) startPods(ctx context.Context, wg *sync.WaitGroup) *podRunner {
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }))
	inf := factory.Core().V1().Pods()
	r := &podRunner{
		s: s, factory: factory, lister: inf.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "sim-pods"}),
	}
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    r.enqueue,
		UpdateFunc: func(_, obj any) { r.enqueue(obj) },
		DeleteFunc: func(obj any) {
			obj = informerutil.Unwrap(obj)
			if p, ok := obj.(*corev1.Pod); ok {
				s.ipam.release(p.UID)
			}
		},
	})
	factory.Start(ctx.Done())
	wg.Go(func() {
		if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
			return
		}
		r.reserveRunning()
		var workers sync.WaitGroup
		for range s.cfg.PodWorkers {
			workers.Go(func() {
				for r.processNext(ctx) {
				}
			})
		}
		workers.Wait()
	})
	return r
}

// reserveRunning records the addresses of pods already running on our
// nodes (from an earlier run) before any worker allocates, so a new pod
// never gets the address of one that is queued behind it.
func (r *podRunner) reserveRunning() {
	pods, err := r.lister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		node := r.s.nodes[p.Spec.NodeName]
		if node == nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		if ip, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			r.s.ipam.reserve(p.UID, node.name, ip)
		}
	}
}

// stop ends the queue and the informer; the caller waits for the workers.
func (r *podRunner) stop() {
	r.queue.ShutDown()
	r.factory.Shutdown()
}

func (r *podRunner) enqueue(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok || r.s.nodes[p.Spec.NodeName] == nil {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(p)
	if err == nil {
		r.queue.Add(key)
	}
}

func (r *podRunner) processNext(ctx context.Context) bool {
	key, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(key)
	if ctx.Err() != nil {
		return true
	}
	if err := r.sync(ctx, key); err != nil {
		if ctx.Err() == nil {
			r.s.log.Debug("sim pod", "pod", key, "err", err)
		}
		r.queue.AddRateLimited(key)
		return true
	}
	r.queue.Forget(key)
	return true
}

func (r *podRunner) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := r.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	node := r.s.nodes[pod.Spec.NodeName]
	if node == nil {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		// As a kubelet once the containers have stopped.
		err := r.s.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)), Preconditions: metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete: %w", err)
		}
		r.s.ipam.release(pod.UID)
		return nil
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		r.s.ipam.release(pod.UID)
		return nil
	case corev1.PodRunning:
		if ip, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
			r.s.ipam.reserve(pod.UID, node.name, ip)
		}
		run, ok := runTime(pod)
		if !ok {
			return nil
		}
		start := pod.CreationTimestamp.Time
		if pod.Status.StartTime != nil {
			start = pod.Status.StartTime.Time
		}
		if wait := time.Until(start.Add(run)); wait > 0 {
			r.queue.AddAfter(key, wait)
			return nil
		}
		if err := r.writeStatus(ctx, pod, complete); err != nil {
			return err
		}
		r.s.ipam.release(pod.UID)
		return nil
	default:
		ip, err := r.s.ipam.allocate(pod.UID, node.name)
		if err != nil {
			return err
		}
		return r.writeStatus(ctx, pod, func(p *corev1.Pod) bool { return start(p, node, ip) })
	}
}

// runTime is how long the pod runs before it succeeds; ok is false for a
// pod that runs until deleted.
func runTime(p *corev1.Pod) (time.Duration, bool) {
	job := false
	for _, o := range p.OwnerReferences {
		if o.Kind == "Job" {
			job = true
		}
	}
	if !job && p.Spec.RestartPolicy != corev1.RestartPolicyNever && p.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return 0, false
	}
	if v, ok := p.Annotations[RunSecondsAnnotation]; ok {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
			return time.Duration(n * float64(time.Second)), true
		}
	}
	if job {
		return jobRunTime, true
	}
	return 0, false
}

// writeStatus applies mutate to the pod and writes its status; on a
// conflict it reads the pod again and reapplies mutate, which returns
// false when there is nothing left to change.
func (r *podRunner) writeStatus(ctx context.Context, pod *corev1.Pod, mutate func(*corev1.Pod) bool) error {
	pods := r.s.client.CoreV1().Pods(pod.Namespace)
	for attempt := 0; ; attempt++ {
		next := pod.DeepCopy()
		if !mutate(next) {
			return nil
		}
		_, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			return fmt.Errorf("update status: %w", err)
		}
		fresh, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if fresh.UID != pod.UID || fresh.DeletionTimestamp != nil {
			return nil // replaced or being deleted: the informer brings it back
		}
		pod = fresh
	}
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType, status corev1.ConditionStatus, reason string, now metav1.Time) {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == typ {
			if c.Status != status {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason = status, reason
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: typ, Status: status, Reason: reason, LastTransitionTime: now})
}

func containerID(p *corev1.Pod, name string) string {
	return "sim://" + string(p.UID) + "/" + name
}

// start makes a pending pod Running and Ready on node with ip.
func start(p *corev1.Pod, node *simNode, ip netip.Addr) bool {
	if p.Status.Phase != corev1.PodPending && p.Status.Phase != "" {
		return false
	}
	now := metav1.Now()
	st := &p.Status
	st.Phase = corev1.PodRunning
	st.HostIP, st.HostIPs = node.address, []corev1.HostIP{{IP: node.address}}
	st.PodIP, st.PodIPs = ip.String(), []corev1.PodIP{{IP: ip.String()}}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		podCondition(p, t, corev1.ConditionTrue, "", now)
	}
	st.InitContainerStatuses = nil
	for _, c := range p.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: containerID(p, c.Name), Ready: true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: containerID(p, c.Name)}},
		})
	}
	st.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, ContainerID: containerID(p, c.Name), Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return true
}

// complete makes a running pod Succeeded, its containers exited with 0.
func complete(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodSucceeded
	podCondition(p, corev1.PodReadyToStartContainers, corev1.ConditionFalse, "", now)
	podCondition(p, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", now)
	podCondition(p, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", now)
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		started := now
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		cs.Ready, cs.Started = false, ptr.To(false)
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: now, ContainerID: cs.ContainerID,
		}}
	}
	return true
}
