package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
	"github.com/skiff-dev/skiff/internal/apiserver/flowcontrol"
	"github.com/skiff-dev/skiff/internal/storage"
)

// FlowControlConfig configures API Priority and Fairness
// (--enable-priority-and-fairness and the in-flight limits).
type FlowControlConfig struct {
	Enabled bool
	// MaxRequestsInFlight and MaxMutatingRequestsInFlight add up to the
	// seats the limited priority levels share (upstream: 400 + 200).
	MaxRequestsInFlight, MaxMutatingRequestsInFlight int
	// RequestWaitLimit bounds a request's time in a queue (default 15 s).
	RequestWaitLimit time.Duration
}

var (
	flowSchemasGVR    = flowcontrolv1.SchemeGroupVersion.WithResource("flowschemas")
	priorityLevelsGVR = flowcontrolv1.SchemeGroupVersion.WithResource("prioritylevelconfigurations")
)

// tooManyRequestsMessage is upstream's plain-text body of a 429.
const tooManyRequestsMessage = "Too many requests, please try again later."

// flowController is the server's priority and fairness controller (nil
// when off).
type flowController = *flowcontrol.Controller

// newFlowControl returns the controller, or nil when priority and
// fairness is off or its resources are not served.
func (s *Server) newFlowControl(cfg FlowControlConfig) *flowcontrol.Controller {
	if !cfg.Enabled || s.resources[flowSchemasGVR] == nil || s.resources[priorityLevelsGVR] == nil {
		return nil
	}
	return flowcontrol.New(flowcontrol.Options{
		ConcurrencyLimit: cfg.MaxRequestsInFlight + cfg.MaxMutatingRequestsInFlight,
		RequestWaitLimit: cfg.RequestWaitLimit,
	})
}

// admitFlow classifies an authenticated request and waits for its seat.
// It answers 429 itself and returns false when the request is rejected;
// otherwise the caller must call Done on the ticket when the request ends.
// Long-running requests other than WATCH are not limited, as upstream; a
// WATCH's ticket frees its seats early, once the watch handler has sent its
// initial events (flowcontrol.WatchInitialized on a context from
// flowcontrol.WithTicket).
func (s *Server) admitFlow(w http.ResponseWriter, r *http.Request, u *authn.User) (flowcontrol.Ticket, bool) {
	if s.flow == nil || u == nil {
		return flowcontrol.Ticket{}, true
	}
	a := requestAttributes(r, u)
	req := flowcontrol.Request{
		User: u.Name, Groups: u.Groups, ResourceRequest: a.ResourceRequest, Verb: a.Verb, Path: a.Path,
		APIGroup: a.APIGroup, Resource: a.Resource, Subresource: a.Subresource, Namespace: a.Namespace,
	}
	watch := a.ResourceRequest && a.Verb == "watch"
	if a.ResourceRequest && !watch && longRunning(a.Verb, a.Subresource) {
		return flowcontrol.Ticket{}, true
	}
	switch {
	case watch:
		req.Seats = s.watchSeats(r, a)
	case a.ResourceRequest && a.Verb == "list":
		req.Seats = s.listSeats(r, a)
	case a.ResourceRequest && flowcontrol.IsWrite(a.Verb):
		req.Watchers = s.interestedWatchers(a)
	}
	t, cl, err := s.flow.Admit(r.Context(), &req)
	setFlowHeaders(w, cl)
	if err != nil {
		retry := int64(1)
		var rej *flowcontrol.Rejection
		if errors.As(err, &rej) {
			retry = rej.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
		http.Error(w, tooManyRequestsMessage, http.StatusTooManyRequests)
		return t, false
	}
	if watch {
		t = t.ForWatch()
	}
	return t, true
}

// watchSeats is upstream's work estimate of a WATCH: a LIST of its
// resource (the watch cache's count) when it asks for sendInitialEvents and
// names no single object (metadata.name), else one seat. The query
// parameter is read as upstream's conversion does: present and neither "0"
// nor "false".
func (s *Server) watchSeats(r *http.Request, a authz.Attributes) int {
	v, ok := r.URL.Query()["sendInitialEvents"]
	send := ok && (len(v) == 0 || (v[0] != "0" && !strings.EqualFold(v[0], "false")))
	if !send || a.Name != "" || a.Subresource != "" {
		return 1
	}
	res := s.lookupResource(schema.GroupVersionResource{Group: a.APIGroup, Version: a.APIVersion, Resource: a.Resource})
	if res == nil || res.cache == nil {
		// Aggregated: the other server does the work.
		return 1
	}
	return flowcontrol.WatchSeats(res.cache.Len(), true)
}

// listSeats is upstream's work estimate of a LIST: its resource's object
// count (the watch cache's), capped by limit. A LIST naming one object
// (fieldSelector metadata.name) and one of a resource served elsewhere
// (aggregated) take one seat, as upstream.
func (s *Server) listSeats(r *http.Request, a authz.Attributes) int {
	if a.Name != "" || a.Subresource != "" {
		return 1
	}
	res := s.lookupResource(schema.GroupVersionResource{Group: a.APIGroup, Version: a.APIVersion, Resource: a.Resource})
	if res == nil || res.cache == nil {
		return 1
	}
	return flowcontrol.ListSeats(res.cache.Len(), r.URL.Query().Get("limit"))
}

// interestedWatchers counts the watches a write's event will reach, for
// upstream's mutating work estimate: those of the whole resource, of the
// object's namespace and of the object by name (the watch cache's count).
// A ServiceAccount token request writes nothing, and a resource served
// elsewhere (aggregated) is not watched here: both count none, as upstream.
func (s *Server) interestedWatchers(a authz.Attributes) int {
	if a.Resource == "serviceaccounts" && a.Subresource == "token" {
		return 0
	}
	res := s.lookupResource(schema.GroupVersionResource{Group: a.APIGroup, Version: a.APIVersion, Resource: a.Resource})
	if res == nil || res.cache == nil {
		return 0
	}
	return res.cache.InterestedWatchers(a.Namespace, a.Name)
}

// longRunning is upstream's default long-running check: watch and proxy
// verbs, and the attach, exec, proxy, log and portforward subresources.
func longRunning(verb, subresource string) bool {
	switch verb {
	case "watch", "proxy":
		return true
	}
	switch subresource {
	case "attach", "exec", "proxy", "log", "portforward":
		return true
	}
	return false
}

func setFlowHeaders(w http.ResponseWriter, cl flowcontrol.Classification) {
	h := w.Header()
	h.Set(flowcontrolv1.ResponseHeaderMatchedPriorityLevelConfigurationUID, string(cl.PriorityLevelUID))
	h.Set(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID, string(cl.FlowSchemaUID))
}

// runFlowControl feeds the controller the stored configuration whenever it
// changes, keeps the FlowSchemas' Dangling conditions true to it, and
// re-ensures the default objects every minute, as upstream. It returns
// when ctx ends.
func (s *Server) runFlowControl(ctx context.Context) {
	if s.flow == nil {
		return
	}
	// Seat borrowing between levels, ending with this loop.
	borrowing := make(chan struct{})
	go func() { defer close(borrowing); s.flow.Run(ctx) }()
	defer func() { <-borrowing }()
	fsRes, plRes := s.resources[flowSchemasGVR], s.resources[priorityLevelsGVR]
	ensure := time.NewTicker(time.Minute)
	defer ensure.Stop()
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		fw, err := fsRes.cache.Watch(wctx, storage.WatchOptions{Prefix: fsRes.prefix, Initial: true})
		var pw *storage.Watcher
		if err == nil {
			pw, err = plRes.cache.Watch(wctx, storage.WatchOptions{Prefix: plRes.prefix, Initial: true})
		}
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				s.log.Warn("flow control: watch configuration", "err", err)
				time.Sleep(time.Second)
			}
			continue
		}
		s.applyFlowConfig(ctx)
		s.followFlowConfig(ctx, fw, pw, ensure.C)
		cancel()
	}
}

// followFlowConfig applies each change until a watcher closes or ctx ends.
func (s *Server) followFlowConfig(ctx context.Context, fw, pw *storage.Watcher, ensure <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-fw.Events():
			if !ok {
				return
			}
		case _, ok := <-pw.Events():
			if !ok {
				return
			}
		case <-ensure:
			if s.isReady() {
				if err := s.bootstrapFlowControl(ctx); err != nil {
					s.log.Warn("flow control: ensure default configuration", "err", err)
				}
			}
			continue
		}
		// Let a burst of changes (a bootstrap, a kubectl apply) settle.
		time.Sleep(50 * time.Millisecond)
		open := drain(fw) && drain(pw)
		s.applyFlowConfig(ctx)
		if !open {
			return
		}
	}
}

// drain discards the events w has ready and reports whether it is still
// open.
func drain(w *storage.Watcher) bool {
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return false
			}
		default:
			return true
		}
	}
}

// applyFlowConfig gives the controller the cached configuration and
// writes the Dangling conditions that changed.
func (s *Server) applyFlowConfig(ctx context.Context) {
	fsRes, plRes := s.resources[flowSchemasGVR], s.resources[priorityLevelsGVR]
	fsEntries, _ := fsRes.cache.List(fsRes.prefix, nil)
	plEntries, _ := plRes.cache.List(plRes.prefix, nil)
	fss := make([]*flowcontrolv1.FlowSchema, 0, len(fsEntries))
	pls := make([]*flowcontrolv1.PriorityLevelConfiguration, 0, len(plEntries))
	levels := make(map[string]bool, len(plEntries))
	for _, e := range plEntries {
		if pl, ok := e.Obj.(*flowcontrolv1.PriorityLevelConfiguration); ok {
			pls = append(pls, pl)
			levels[pl.Name] = true
		}
	}
	for _, e := range fsEntries {
		if fs, ok := e.Obj.(*flowcontrolv1.FlowSchema); ok {
			fss = append(fss, fs)
		}
	}
	s.flow.Update(fss, pls)
	now := time.Now()
	for _, fs := range fss {
		cond, changed := flowcontrol.DanglingCondition(fs, levels[fs.Spec.PriorityLevelConfiguration.Name], now)
		if !changed {
			continue
		}
		_, err := fsRes.guaranteedUpdate(ctx, "", fs.Name, func(cur runtime.Object) (runtime.Object, error) {
			f := cur.(*flowcontrolv1.FlowSchema)
			for i := range f.Status.Conditions {
				if f.Status.Conditions[i].Type == cond.Type {
					f.Status.Conditions[i] = cond
					return f, nil
				}
			}
			f.Status.Conditions = append(f.Status.Conditions, cond)
			return f, nil
		})
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			s.log.Warn("flow control: write FlowSchema status", "flowschema", fs.Name, "err", err)
		}
	}
}

// bootstrapFlowControl ensures upstream's default configuration: missing
// objects are created; mandatory ones are kept as defined, suggested ones
// while their autoupdate annotation allows; defaults the server created
// and no longer has are removed. Unchanged objects cost no write.
func (s *Server) bootstrapFlowControl(ctx context.Context) error {
	if s.flow == nil {
		return nil
	}
	b := flowcontrol.DefaultBootstrap()
	plRes, fsRes := s.resources[priorityLevelsGVR], s.resources[flowSchemasGVR]
	// The revise closures return a plain nil for "no change": a nil
	// *PriorityLevelConfiguration in an interface would not compare equal.
	for _, d := range b.PriorityLevels {
		err := s.ensureFlowObject(ctx, plRes, d.Object, func(cur runtime.Object) runtime.Object {
			if next := flowcontrol.RevisePriorityLevel(cur.(*flowcontrolv1.PriorityLevelConfiguration), d.Object, d.Mandatory); next != nil {
				return next
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, d := range b.FlowSchemas {
		err := s.ensureFlowObject(ctx, fsRes, d.Object, func(cur runtime.Object) runtime.Object {
			if next := flowcontrol.ReviseFlowSchema(cur.(*flowcontrolv1.FlowSchema), d.Object, d.Mandatory); next != nil {
				return next
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	fsNames, plNames := b.Names()
	for _, x := range []struct {
		res   *resource
		names map[string]bool
	}{{fsRes, fsNames}, {plRes, plNames}} {
		entries, _ := x.res.cache.List(x.res.prefix, nil)
		for _, e := range entries {
			m, ok := e.Obj.(metav1.Object)
			if !ok || !flowcontrol.IsUnwanted(m, x.names) {
				continue
			}
			if _, err := x.res.deleteNow(ctx, "", m.GetName(), e.Rev, e.Obj); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("remove unwanted %s %s: %w", x.res.Kind, m.GetName(), err)
			}
		}
	}
	// Serve with the stored configuration (its UIDs, users' objects) from
	// the moment the server is ready.
	for _, res := range []*resource{fsRes, plRes} {
		if err := res.cache.WaitFresh(ctx); err != nil {
			return fmt.Errorf("flow control configuration: %w", err)
		}
	}
	s.applyFlowConfig(ctx)
	return nil
}

// ensureFlowObject creates want when missing, or applies revise (which
// returns nil for no change) to the stored object.
func (s *Server) ensureFlowObject(ctx context.Context, res *resource, want metav1.Object, revise func(cur runtime.Object) runtime.Object) error {
	name := want.GetName()
	if e, ok := res.cache.Get(res.key("", name)); ok {
		if revise(e.Obj) == nil {
			return nil
		}
	} else {
		err := createFlowObject(ctx, res, want.(runtime.Object))
		if err == nil || !(errors.Is(err, storage.ErrExists) || isAlreadyExists(err)) {
			return err
		}
		// Another server created it since the cache was read: revise it.
	}
	_, err := res.guaranteedUpdate(ctx, "", name, func(cur runtime.Object) (runtime.Object, error) {
		next := revise(cur)
		if next == nil {
			return cur, nil
		}
		if !equality.Semantic.DeepEqual(specOf(cur), specOf(next)) {
			nm := next.(metav1.Object)
			nm.SetGeneration(cur.(metav1.Object).GetGeneration() + 1)
		}
		return next, nil
	})
	if err != nil {
		return fmt.Errorf("update %s %s: %w", res.Kind, name, err)
	}
	return nil
}

func createFlowObject(ctx context.Context, res *resource, want runtime.Object) error {
	obj := want.DeepCopyObject()
	m := obj.(metav1.Object)
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.Now())
	m.SetGeneration(1)
	res.Default(obj)
	if _, err := res.create(ctx, obj); err != nil {
		return fmt.Errorf("create %s %s: %w", res.Kind, m.GetName(), err)
	}
	return nil
}

func specOf(obj runtime.Object) any {
	switch o := obj.(type) {
	case *flowcontrolv1.FlowSchema:
		return o.Spec
	case *flowcontrolv1.PriorityLevelConfiguration:
		return o.Spec
	}
	return nil
}
