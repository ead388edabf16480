package endpoints

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// syncSlices writes the service's EndpointSlices as upstream's controller
// shapes them: pods whose target ports resolve to the same numbers share
// a slice, so a named port that differs between pods (or exists on only
// some) splits them; a service without endpoints keeps one empty slice.
// Slices this controller manages for the service that are no longer
// wanted are deleted.
func (c *Controller) syncSlices(ctx context.Context, svc *corev1.Service, addrs []address) error {
	groups := map[string]*discoveryv1.EndpointSlice{}
	for _, a := range addrs {
		ports := slicePorts(svc, a.pod)
		key := portsKey(ports)
		sl := groups[key]
		if sl == nil {
			sl = c.newSlice(svc, ports)
			groups[key] = sl
		}
		sl.Endpoints = append(sl.Endpoints, sliceEndpoint(svc, a))
	}
	want := make(map[string]*discoveryv1.EndpointSlice, len(groups)+1)
	for i, k := range slices.Sorted(maps.Keys(groups)) {
		sl := groups[k]
		// The first keeps the plain name, so a service whose pods agree
		// (nearly all) has one slice of a stable name.
		sl.Name = svc.Name + "-skiff"
		if i > 0 {
			sl.Name += fmt.Sprintf("-%x", sha256.Sum256([]byte(k)))[:9]
		}
		want[sl.Name] = sl
	}
	if len(want) == 0 {
		sl := c.newSlice(svc, nil)
		sl.Name = svc.Name + "-skiff"
		want[sl.Name] = sl
	}

	sel := labels.SelectorFromSet(labels.Set{ServiceNameLabel: svc.Name, ManagedByLabel: managedByValue})
	have, err := c.slices.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return err
	}
	client := c.client.DiscoveryV1().EndpointSlices(svc.Namespace)
	var errs []error
	for _, cur := range have {
		if _, ok := want[cur.Name]; ok || !metav1.IsControlledBy(cur, svc) {
			continue
		}
		err := client.Delete(ctx, cur.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	current := make(map[string]*discoveryv1.EndpointSlice, len(have))
	for _, cur := range have {
		current[cur.Name] = cur
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		sl := want[name]
		cur := current[name]
		if cur == nil {
			_, err := client.Create(ctx, sl, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Our informer trails; the next sync updates it.
				err = fmt.Errorf("endpoint slice %s/%s exists already: %w", svc.Namespace, name, err)
			}
			errs = append(errs, err)
			continue
		}
		if equality.Semantic.DeepEqual(cur.Endpoints, sl.Endpoints) && equality.Semantic.DeepEqual(cur.Ports, sl.Ports) &&
			equality.Semantic.DeepEqual(cur.Labels, sl.Labels) {
			continue
		}
		next := cur.DeepCopy()
		next.Endpoints, next.Ports, next.Labels = sl.Endpoints, sl.Ports, sl.Labels
		_, err := client.Update(ctx, next, metav1.UpdateOptions{})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Controller) newSlice(svc *corev1.Service, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	yes := true
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: svc.Namespace,
			Labels:    map[string]string{ServiceNameLabel: svc.Name, ManagedByLabel: managedByValue},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
}

// slicePorts are the service's ports as they resolve on one pod; a named
// port the pod does not have is left out, as upstream.
func slicePorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		port, ok := targetPort(sp, pod)
		if !ok {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{
			Name: strPtr(sp.Name), Port: &port, Protocol: protoPtr(sp.Protocol), AppProtocol: sp.AppProtocol,
		})
	}
	return out
}

// portsKey identifies a resolved port list.
func portsKey(ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		fmt.Fprintf(&b, "%s/%d/%s;", name, *p.Port, *p.Protocol)
	}
	return b.String()
}

func sliceEndpoint(svc *corev1.Service, a address) discoveryv1.Endpoint {
	ready := a.ready
	serving := isReady(a.pod)
	terminating := false
	ep := discoveryv1.Endpoint{
		Addresses:  []string{a.pod.Status.PodIP},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: a.pod.Namespace, Name: a.pod.Name, UID: a.pod.UID},
		NodeName:   strPtr(a.pod.Spec.NodeName),
	}
	if a.pod.Spec.Hostname != "" && a.pod.Spec.Subdomain == svc.Name {
		ep.Hostname = &a.pod.Spec.Hostname
	}
	return ep
}
