// Package endpointslicemirroring mirrors the Endpoints of Services without
// a selector (written by users or other controllers) into EndpointSlices,
// so consumers of slices (the service proxy, DNS) see them too. Services
// with a selector are the endpoints controller's.
package endpointslicemirroring

import (
	"context"
	"fmt"
	"log/slog"
	"maps"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// ManagedBy is the managed-by label value of mirrored slices, as upstream.
const ManagedBy = "endpointslicemirroring-controller.k8s.io"

// leaderAnnotation marks Endpoints used as leader-election locks, which
// upstream never mirrors.
const leaderAnnotation = "control-plane.alpha.kubernetes.io/leader"

// Event reasons, as upstream.
const (
	reasonInvalidIP       = "InvalidIPAddress"
	reasonTooManyAddrs    = "TooManyAddressesToMirror"
	reasonFailedToMirror  = "FailedToUpdateEndpointSlices"
	eventComponent        = "endpoint-slice-mirroring-controller"
	endpointsOwnerVersion = "v1"
)

// Controller mirrors Endpoints into EndpointSlices.
type Controller struct {
	client      kubernetes.Interface
	svcLister   listerscorev1.ServiceLister
	epLister    listerscorev1.EndpointsLister
	sliceLister listersdiscoveryv1.EndpointSliceLister
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	log         *slog.Logger
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	svc := factory.Core().V1().Services()
	eps := factory.Core().V1().Endpoints()
	slices := factory.Discovery().V1().EndpointSlices()
	b, rec := controllerutil.NewRecorder(eventComponent)
	c := &Controller{
		client: client, svcLister: svc.Lister(), epLister: eps.Lister(), sliceLister: slices.Lister(), log: log,
		synced:      []cache.InformerSynced{svc.Informer().HasSynced, eps.Informer().HasSynced, slices.Informer().HasSynced},
		queue:       controllerutil.NewQueue("endpointslicemirroring"),
		broadcaster: b, recorder: rec,
	}
	handler := informerutil.OnAnyChange(controllerutil.EnqueueKey(c.queue))
	_, _ = svc.Informer().AddEventHandler(handler)
	_, _ = eps.Informer().AddEventHandler(handler)
	// A mirrored slice changed or removed by someone else is put back.
	sliceChanged := func(o any) {
		s, ok := informerutil.Unwrap(o).(*discoveryv1.EndpointSlice)
		if !ok || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels[discoveryv1.LabelServiceName] == "" {
			return
		}
		c.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
	}
	_, _ = slices.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sliceChanged,
		UpdateFunc: func(old, o any) { sliceChanged(old); sliceChanged(o) },
		DeleteFunc: sliceChanged,
	})
	return c
}

// Run mirrors until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.broadcaster, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 5, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ep, mirror, err := c.toMirror(ns, name)
	if err != nil {
		return err
	}
	if !mirror {
		// Most Endpoints are not mirrored: ask the informer, not the API
		// server, whether there is anything to clean up.
		cached, err := c.sliceLister.EndpointSlices(ns).List(mirroredSelector(name))
		if err != nil {
			return fmt.Errorf("listing cached slices of %s: %w", key, err)
		}
		stale := make([]discoveryv1.EndpointSlice, 0, len(cached))
		for _, s := range cached {
			stale = append(stale, *s)
		}
		return c.deleteSlices(ctx, stale)
	}
	// Read from the API server rather than the informer, so a slice just
	// created is never created twice.
	existing, err := c.mirroredSlices(ctx, ns, name)
	if err != nil {
		return err
	}
	d := desiredSlices(ep)
	if d.invalid > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonInvalidIP,
			"Skipped %d invalid IP addresses when mirroring to EndpointSlices", d.invalid)
	}
	if d.truncated > 0 {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonTooManyAddrs,
			"A max of %d addresses can be mirrored to EndpointSlices per Endpoints subset. %d addresses were skipped", MaxEndpointsPerSubset, d.truncated)
	}
	if err := c.reconcile(ctx, ep, d, existing); err != nil {
		c.recorder.Eventf(ep, corev1.EventTypeWarning, reasonFailedToMirror, "Error mirroring Endpoints to EndpointSlices: %v", err)
		return err
	}
	return nil
}

// toMirror returns the Endpoints named key when they are to be mirrored:
// the Service exists without a selector, and the Endpoints neither opt out
// nor serve as a leader-election lock.
func (c *Controller) toMirror(ns, name string) (*corev1.Endpoints, bool, error) {
	svc, err := c.svcLister.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("service %s/%s: %w", ns, name, err)
	}
	if svc.Spec.Selector != nil {
		return nil, false, nil
	}
	ep, err := c.epLister.Endpoints(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("endpoints %s/%s: %w", ns, name, err)
	}
	if ep.Labels[discoveryv1.LabelSkipMirror] == "true" {
		return nil, false, nil
	}
	if _, ok := ep.Annotations[leaderAnnotation]; ok {
		return nil, false, nil
	}
	return ep, true, nil
}

func (c *Controller) mirroredSlices(ctx context.Context, ns, name string) ([]discoveryv1.EndpointSlice, error) {
	list, err := c.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: mirroredSelector(name).String()})
	if err != nil {
		return nil, fmt.Errorf("listing mirrored slices of %s/%s: %w", ns, name, err)
	}
	return list.Items, nil
}

// mirroredSelector selects the slices mirrored for a Service.
func mirroredSelector(name string) labels.Selector {
	return labels.Set{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ManagedBy}.AsSelector()
}

func (c *Controller) deleteSlices(ctx context.Context, slices []discoveryv1.EndpointSlice) error {
	for _, s := range slices {
		err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &s.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting EndpointSlice %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// reconcile makes one slice per desired group: the first existing slice
// of the group is updated, further ones and those of groups no longer
// wanted are deleted.
func (c *Controller) reconcile(ctx context.Context, ep *corev1.Endpoints, d *desired, existing []discoveryv1.EndpointSlice) error {
	byKey := map[groupKey][]discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := keyOf(s.AddressType, s.Ports)
		byKey[k] = append(byKey[k], s)
	}
	api := c.client.DiscoveryV1().EndpointSlices(ep.Namespace)
	var stale []discoveryv1.EndpointSlice
	for _, k := range d.order {
		want := newSlice(ep, d.groups[k])
		have := byKey[k]
		delete(byKey, k)
		if len(have) == 0 {
			if ep.DeletionTimestamp != nil {
				continue
			}
			if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil {
				if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
					return nil
				}
				return fmt.Errorf("creating EndpointSlice for %s/%s: %w", ep.Namespace, ep.Name, err)
			}
			continue
		}
		stale = append(stale, have[1:]...)
		cur := have[0]
		if upToDate(&cur, want) {
			continue
		}
		next := cur.DeepCopy()
		next.Labels, next.Annotations, next.OwnerReferences = want.Labels, want.Annotations, want.OwnerReferences
		next.Ports, next.Endpoints = want.Ports, want.Endpoints
		if _, err := api.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating EndpointSlice %s/%s: %w", cur.Namespace, cur.Name, err)
		}
	}
	for _, rest := range byKey {
		stale = append(stale, rest...)
	}
	return c.deleteSlices(ctx, stale)
}

func upToDate(cur, want *discoveryv1.EndpointSlice) bool {
	return equality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints) &&
		equality.Semantic.DeepEqual(cur.Ports, want.Ports) &&
		maps.Equal(cur.Labels, want.Labels) &&
		maps.Equal(cur.Annotations, want.Annotations) &&
		equality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences)
}

// newSlice is the mirrored slice of one group: the Endpoints' labels and
// annotations (but the change-trigger time and kubectl's last applied
// configuration) with the service-name and managed-by labels, owned by the
// Endpoints.
func newSlice(ep *corev1.Endpoints, g *group) *discoveryv1.EndpointSlice {
	yes := true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ep.Namespace,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: endpointsOwnerVersion, Kind: "Endpoints", Name: ep.Name, UID: ep.UID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		AddressType: g.addrType,
		Ports:       g.ports,
		Endpoints:   g.endpoints,
	}
	maps.Copy(s.Labels, ep.Labels)
	s.Labels[discoveryv1.LabelServiceName] = ep.Name
	s.Labels[discoveryv1.LabelManagedBy] = ManagedBy
	for k, v := range ep.Annotations {
		if k == corev1.EndpointsLastChangeTriggerTime || k == corev1.LastAppliedConfigAnnotation {
			continue
		}
		s.Annotations[k] = v
	}
	s.GenerateName = ep.Name + "-"
	if len(s.GenerateName) > 253-5 { // room for the generated suffix
		s.GenerateName = s.GenerateName[:253-5]
	}
	return s
}
