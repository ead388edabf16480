package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/storage"
)

// availabilityResync is how often every remote APIService is checked even
// when nothing changed, as upstream's available-condition controller.
const availabilityResync = 30 * time.Second

// runAvailability keeps each APIService's Available condition current:
// local ones are available; remote ones when their service answers the
// group version's discovery document. It also remembers those documents
// for discovery. It returns when ctx ends.
func (a *aggregator) runAvailability(ctx context.Context) {
	res := a.s.resources[apiServicesGVR]
	if res == nil {
		return
	}
	select {
	case <-res.cache.Ready():
	case <-ctx.Done():
		return
	}
	// A change to APIServices, Services or EndpointSlices moves the sum of
	// their caches' revisions: then every APIService is checked again.
	watched := []*resource{res}
	for _, gvr := range []schema.GroupVersionResource{webhookServicesGVR, endpointSlicesGVR} {
		if r := a.s.resources[gvr]; r != nil {
			watched = append(watched, r)
		}
	}
	revs := func() int64 {
		var sum int64
		for _, r := range watched {
			sum += r.cache.Rev()
		}
		return sum
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRev, lastFull := int64(-1), time.Time{}
	for {
		if rev := revs(); rev != lastRev || time.Since(lastFull) >= availabilityResync {
			a.checkAll(ctx, res)
			lastRev, lastFull = rev, time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *aggregator) checkAll(ctx context.Context, res *resource) {
	remotes := a.snapshot()
	entries, _ := res.cache.List(res.prefix, nil)
	for _, e := range entries {
		svc, ok := e.Obj.(*apiregistrationv1.APIService)
		if !ok {
			continue
		}
		want := localAvailableCondition()
		if svc.Spec.Service != nil {
			gv := groupVersionOf(svc)
			want = a.check(ctx, svc, remotes[gv])
		}
		if err := a.setAvailable(ctx, res, svc, want); err != nil && ctx.Err() == nil {
			a.s.log.Warn("update APIService status", "apiservice", svc.Name, "err", err)
		}
	}
}

func localAvailableCondition() apiregistrationv1.APIServiceCondition {
	return apiregistrationv1.APIServiceCondition{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionTrue,
		Reason: "Local", Message: "Local APIServices are always available"}
}

// check answers whether the remote API is available, with upstream's
// reasons and messages, and records its discovery document.
func (a *aggregator) check(ctx context.Context, svc *apiregistrationv1.APIService, r *remoteAPI) apiregistrationv1.APIServiceCondition {
	ref := svc.Spec.Service
	cond := apiregistrationv1.APIServiceCondition{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionFalse}
	services := a.s.resources[webhookServicesGVR]
	if services == nil {
		cond.Reason, cond.Message = "ServiceNotFound", fmt.Sprintf("service/%s in %q is not present", ref.Name, ref.Namespace)
		return cond
	}
	e, ok := services.cache.Get(services.key(ref.Namespace, ref.Name))
	if !ok {
		cond.Reason, cond.Message = "ServiceNotFound", fmt.Sprintf("service/%s in %q is not present", ref.Name, ref.Namespace)
		return cond
	}
	if s, ok := e.Obj.(*corev1.Service); ok && s.Spec.Type != corev1.ServiceTypeExternalName && !a.hasReadyEndpoint(s, ref) {
		cond.Reason, cond.Message = "MissingEndpoints", fmt.Sprintf("endpoints for service/%s in %q have no addresses with port name %q",
			ref.Name, ref.Namespace, servicePortName(s, ref))
		return cond
	}
	if r == nil {
		cond.Reason, cond.Message = "FailedDiscoveryCheck", "the APIService's client configuration is unusable (see the server log)"
		return cond
	}
	path := "/apis/" + svc.Spec.Group + "/" + svc.Spec.Version
	list, err := fetchResourceList(ctx, r.client, path)
	if err != nil {
		cond.Reason, cond.Message = "FailedDiscoveryCheck",
			fmt.Sprintf("failing or missing response from https://%s.%s.svc%s: %v", ref.Name, ref.Namespace, path, err)
		return cond
	}
	if old := r.resources.Swap(list); old == nil || !equality.Semantic.DeepEqual(old, list) {
		a.gen.Add(1)
	}
	cond.Status, cond.Reason, cond.Message = apiregistrationv1.ConditionTrue, "Passed", "all checks passed"
	return cond
}

func (a *aggregator) hasReadyEndpoint(s *corev1.Service, ref *apiregistrationv1.ServiceReference) bool {
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Port == port {
			_, ok := webhookSource{a.s}.readyEndpoint(ref.Namespace, ref.Name, &s.Spec.Ports[i])
			return ok
		}
	}
	return false
}

func servicePortName(s *corev1.Service, ref *apiregistrationv1.ServiceReference) string {
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return p.Name
		}
	}
	return ""
}

// fetchResourceList GETs an extension server's group-version document.
func fetchResourceList(ctx context.Context, c *http.Client, path string) (*metav1.APIResourceList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://aggregated"+path, nil)
	if err != nil {
		return nil, err
	}
	// The transport dials the service's endpoints whatever the host; the
	// identity headers say who asks: this server, as upstream's check.
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Remote-User", "system:kube-aggregator")
	req.Header.Add("X-Remote-Group", "system:masters")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bad status from https://aggregated%s: %d", path, resp.StatusCode)
	}
	list := &metav1.APIResourceList{}
	if err := json.Unmarshal(body, list); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return list, nil
}

// setAvailable writes want as the APIService's Available condition when
// it differs, keeping the transition time when only the message changed.
func (a *aggregator) setAvailable(ctx context.Context, res *resource, svc *apiregistrationv1.APIService, want apiregistrationv1.APIServiceCondition) error {
	if cur := availableCondition(svc); cur != nil && cur.Status == want.Status && cur.Reason == want.Reason && cur.Message == want.Message {
		return nil
	}
	_, err := res.guaranteedUpdate(ctx, "", svc.Name, func(obj runtime.Object) (runtime.Object, error) {
		next := obj.(*apiregistrationv1.APIService)
		if next.UID != svc.UID {
			return next, nil // replaced meanwhile; its own check follows
		}
		cur := availableCondition(next)
		if cur == nil {
			want.LastTransitionTime = metav1.Now()
			next.Status.Conditions = append(next.Status.Conditions, want)
			return next, nil
		}
		if cur.Status != want.Status {
			want.LastTransitionTime = metav1.Now()
		} else {
			want.LastTransitionTime = cur.LastTransitionTime
		}
		*cur = want
		return next, nil
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func availableCondition(svc *apiregistrationv1.APIService) *apiregistrationv1.APIServiceCondition {
	for i := range svc.Status.Conditions {
		if svc.Status.Conditions[i].Type == apiregistrationv1.Available {
			return &svc.Status.Conditions[i]
		}
	}
	return nil
}

// bootstrapAggregation registers a local APIService for every built-in
// group version, as kube-apiserver's autoregistration does, and publishes
// kube-system/extension-apiserver-authentication, which extension servers
// read to trust this server's front-proxy requests.
func (s *Server) bootstrapAggregation(ctx context.Context) error {
	if res := s.resources[apiServicesGVR]; res != nil {
		for _, svc := range apis.LocalAPIServices(s.reg.GroupVersions()) {
			if _, ok := res.cache.Get(res.key("", svc.Name)); ok {
				continue
			}
			svc.UID = types.UID(uuid.NewUUID())
			svc.CreationTimestamp = metav1.Now()
			svc.Status.Conditions[0].LastTransitionTime = metav1.Now()
			if _, err := res.create(ctx, svc); err != nil && !errors.Is(err, storage.ErrExists) && !isAlreadyExists(err) {
				return fmt.Errorf("create APIService %s: %w", svc.Name, err)
			}
		}
	}
	return s.publishExtensionAuthentication(ctx)
}

// publishExtensionAuthentication writes upstream's keys: the client CA,
// the request-header CA, the names it may carry and the header names.
func (s *Server) publishExtensionAuthentication(ctx context.Context) error {
	agg := s.cfg.Aggregation
	data := map[string]string{}
	if len(agg.ClientCAPEM) > 0 {
		data["client-ca-file"] = string(agg.ClientCAPEM)
	}
	if len(agg.RequestHeaderCAPEM) > 0 {
		names, _ := json.Marshal([]string{agg.ProxyClientName})
		data["requestheader-client-ca-file"] = string(agg.RequestHeaderCAPEM)
		data["requestheader-allowed-names"] = string(names)
		data["requestheader-username-headers"] = `["X-Remote-User"]`
		data["requestheader-uid-headers"] = `["X-Remote-Uid"]`
		data["requestheader-group-headers"] = `["X-Remote-Group"]`
		data["requestheader-extra-headers-prefix"] = `["X-Remote-Extra-"]`
	}
	if len(data) == 0 {
		return nil
	}
	res := s.resources[corev1.SchemeGroupVersion.WithResource("configmaps")]
	const ns, name = "kube-system", "extension-apiserver-authentication"
	want := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now()},
		Data:       data,
	}
	if _, err := res.create(ctx, want); err == nil || !(errors.Is(err, storage.ErrExists) || isAlreadyExists(err)) {
		return err
	}
	_, err := res.guaranteedUpdate(ctx, ns, name, func(obj runtime.Object) (runtime.Object, error) {
		cm := obj.(*corev1.ConfigMap)
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		for k, v := range data {
			cm.Data[k] = v
		}
		return cm, nil
	})
	return err
}

func groupVersionOf(svc *apiregistrationv1.APIService) schema.GroupVersion {
	return schema.GroupVersion{Group: svc.Spec.Group, Version: svc.Spec.Version}
}
