// Package endpoints maintains, for every Service with a selector, the
// Endpoints object and the EndpointSlices that list the addresses of its
// pods: ready and not-ready addresses, named target ports resolved per
// pod, headless services, and hostnames for pods with a subdomain.
package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// Labels and annotations of managed objects, as upstream.
const (
	ServiceNameLabel  = discoveryv1.LabelServiceName
	ManagedByLabel    = discoveryv1.LabelManagedBy
	managedByValue    = "endpointslice-controller.k8s.io"
	lastChangeTrigger = corev1.EndpointsLastChangeTriggerTime
)

// Controller reconciles Endpoints and EndpointSlices.
type Controller struct {
	client    kubernetes.Interface
	svcLister listerscorev1.ServiceLister
	podLister listerscorev1.PodLister
	slices    listersdiscoveryv1.EndpointSliceLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	log       *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	svc := factory.Core().V1().Services()
	pods := factory.Core().V1().Pods()
	slices := factory.Discovery().V1().EndpointSlices()
	c := &Controller{
		client: client, svcLister: svc.Lister(), podLister: pods.Lister(), slices: slices.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{svc.Informer().HasSynced, pods.Informer().HasSynced, slices.Informer().HasSynced},
		queue:  controllerutil.NewQueue("endpoints"),
	}
	enqueue := controllerutil.EnqueueKey(c.queue)
	_, _ = svc.Informer().AddEventHandler(informerutil.OnAnyChange(enqueue))
	podChanged := func(o any) {
		p, ok := informerutil.Unwrap(o).(*corev1.Pod)
		if !ok {
			return
		}
		svcs, _ := c.svcLister.Services(p.Namespace).List(labels.Everything())
		for _, s := range svcs {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
				enqueue(s)
			}
		}
	}
	// A managed slice deleted or changed by someone else is put back.
	sliceChanged := func(o any) {
		sl, ok := informerutil.Unwrap(o).(*discoveryv1.EndpointSlice)
		if !ok || sl.Labels[ManagedByLabel] != managedByValue || sl.Labels[ServiceNameLabel] == "" {
			return
		}
		c.queue.Add(sl.Namespace + "/" + sl.Labels[ServiceNameLabel])
	}
	_, _ = slices.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { sliceChanged(o) },
		DeleteFunc: sliceChanged,
	})
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: podChanged,
		UpdateFunc: func(old, o any) {
			podChanged(old) // a label change can move a pod between services
			podChanged(o)
		},
		DeleteFunc: podChanged,
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, c.synced, c.queue, 4, c.sync, c.log)
}

// address is one pod's entry.
type address struct {
	pod   *corev1.Pod
	ready bool
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.svcLister.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The endpoints are owned by the service (slices) or named after
		// it (Endpoints); remove both.
		if err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	if len(svc.Spec.Selector) == 0 {
		return nil // endpoints of selector-less services are the user's
	}
	pods, err := c.podLister.Pods(ns).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	var addrs []address
	for _, p := range pods {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ready := isReady(p) || svc.Spec.PublishNotReadyAddresses
		addrs = append(addrs, address{pod: p, ready: ready})
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].pod.Name < addrs[j].pod.Name })
	if err := c.syncEndpoints(ctx, svc, addrs); err != nil {
		return err
	}
	return c.syncSlices(ctx, svc, addrs)
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// targetPort resolves a service port's target on one pod: a number, or a
// container port found by name.
func targetPort(sp corev1.ServicePort, p *corev1.Pod) (int32, bool) {
	if sp.TargetPort.Type == intstr.Int {
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, true
		}
		return sp.TargetPort.IntVal, true
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == sp.TargetPort.StrVal && (cp.Protocol == sp.Protocol || (cp.Protocol == "" && sp.Protocol == corev1.ProtocolTCP)) {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

func (c *Controller) syncEndpoints(ctx context.Context, svc *corev1.Service, addrs []address) error {
	// Pods that resolve named ports differently land in different subsets.
	type subsetKey string
	subsets := map[subsetKey]*corev1.EndpointSubset{}
	var order []subsetKey
	for _, a := range addrs {
		// A port that does not resolve on this pod is left out of its
		// subset, as upstream; a pod on which none resolves is left out.
		var ports []corev1.EndpointPort
		for _, sp := range svc.Spec.Ports {
			if port, found := targetPort(sp, a.pod); found {
				ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: port, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
			}
		}
		if len(ports) == 0 && len(svc.Spec.Ports) > 0 {
			continue
		}
		k := subsetKey(fmt.Sprint(ports))
		s := subsets[k]
		if s == nil {
			s = &corev1.EndpointSubset{Ports: ports}
			subsets[k] = s
			order = append(order, k)
		}
		ea := corev1.EndpointAddress{
			IP: a.pod.Status.PodIP, NodeName: strPtr(a.pod.Spec.NodeName),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: a.pod.Namespace, Name: a.pod.Name, UID: a.pod.UID},
		}
		if a.pod.Spec.Hostname != "" && a.pod.Spec.Subdomain == svc.Name {
			ea.Hostname = a.pod.Spec.Hostname
		}
		if a.ready {
			s.Addresses = append(s.Addresses, ea)
		} else {
			s.NotReadyAddresses = append(s.NotReadyAddresses, ea)
		}
	}
	want := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: copyLabels(svc.Labels)},
	}
	for _, k := range order {
		want.Subsets = append(want.Subsets, *subsets[k])
	}
	cur, err := c.client.CoreV1().Endpoints(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.client.CoreV1().Endpoints(svc.Namespace).Create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(cur.Subsets, want.Subsets) && equality.Semantic.DeepEqual(cur.Labels, want.Labels) {
		return nil
	}
	next := cur.DeepCopy()
	next.Subsets, next.Labels = want.Subsets, want.Labels
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	next.Annotations[lastChangeTrigger] = c.Clock.Now().UTC().Format(time.RFC3339)
	_, err = c.client.CoreV1().Endpoints(svc.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	return err
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func protoPtr(p corev1.Protocol) *corev1.Protocol { return &p }

func copyLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
