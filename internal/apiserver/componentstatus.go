package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ComponentCheck reports the health of a control-plane component for the
// componentstatuses resource.
type ComponentCheck func(ctx context.Context) ComponentHealth

// ComponentHealth is one component's Healthy condition: True with a
// message when it answers, False when it does not or answers badly.
type ComponentHealth struct {
	Status  corev1.ConditionStatus
	Message string
	Error   string
}

// componentProbeTimeout is upstream's probe timeout.
const componentProbeTimeout = 20 * time.Second

// ProbeComponent is upstream's check of a component: GET its /healthz on
// the loopback address and port (TLS, certificate not verified). Upstream
// probes 10257 (controller manager) and 10259 (scheduler).
func ProbeComponent(port int) ComponentCheck {
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // upstream does not verify either
		DisableKeepAlives: true,
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	return func(ctx context.Context) ComponentHealth {
		ctx, cancel := context.WithTimeout(ctx, componentProbeTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return ComponentHealth{Status: corev1.ConditionUnknown, Error: err.Error()}
		}
		resp, err := client.Do(req)
		if err != nil {
			// Upstream's prober reports an unreachable component as a
			// failure whose message is the error.
			return ComponentHealth{Status: corev1.ConditionFalse, Message: err.Error()}
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
		if err != nil {
			return ComponentHealth{Status: corev1.ConditionUnknown, Error: err.Error()}
		}
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return ComponentHealth{Status: corev1.ConditionFalse, Message: string(body)}
		}
		return ComponentHealth{Status: corev1.ConditionTrue, Message: string(body)}
	}
}

// componentChecks are the components componentstatuses reports: the
// configured ones, upstream's probes for those not configured, and etcd.
func (s *Server) componentChecks() map[string]ComponentCheck {
	checks := map[string]ComponentCheck{
		"controller-manager": ProbeComponent(10257),
		"scheduler":          ProbeComponent(10259),
		"etcd-0":             s.etcdHealth,
	}
	for name, c := range s.cfg.Components {
		checks[name] = c
	}
	return checks
}

// etcdHealth reads a key with a quorum read, as upstream's etcd prober does.
func (s *Server) etcdHealth(ctx context.Context) ComponentHealth {
	ctx, cancel := context.WithTimeout(ctx, componentProbeTimeout)
	defer cancel()
	if _, err := s.cfg.Store.CurrentRevision(ctx); err != nil {
		return ComponentHealth{Status: corev1.ConditionFalse, Error: err.Error()}
	}
	return ComponentHealth{Status: corev1.ConditionTrue, Message: "ok"}
}

func componentStatus(name string, h ComponentHealth) corev1.ComponentStatus {
	return corev1.ComponentStatus{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Conditions: []corev1.ComponentCondition{{
			Type: corev1.ComponentHealthy, Status: h.Status, Message: h.Message, Error: h.Error,
		}},
	}
}

// serveComponentStatuses answers GET of componentstatuses (list and get),
// probing every component each time as upstream does.
func (q *request) serveComponentStatuses() error {
	if q.r.Method != http.MethodGet {
		return apierrors.NewMethodNotSupported(q.res.gr, strings.ToLower(q.r.Method))
	}
	// v1 ComponentStatus is deprecated; upstream says so on every request.
	if d, ok := any(&corev1.ComponentStatus{}).(interface{ APILifecycleDeprecated() (int, int) }); ok {
		major, minor := d.APILifecycleDeprecated()
		q.w.Header().Add("Warning", fmt.Sprintf(`299 - "v1 ComponentStatus is deprecated in v%d.%d+"`, major, minor))
	}
	a, err := q.accept()
	if err != nil {
		return err
	}
	checks := q.componentChecks()
	if q.info.name != "" {
		check, ok := checks[q.info.name]
		if !ok {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "componentstatus"}, q.info.name)
		}
		cs := componentStatus(q.info.name, check(q.ctx))
		cs.SetGroupVersionKind(q.res.gvk)
		q.respond(a, http.StatusOK, &cs)
		return nil
	}
	ls, fs, err := q.componentSelectors()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var items []runtime.Object
	for name, check := range checks {
		wg.Go(func() {
			cs := componentStatus(name, check(q.ctx))
			if !ls.Matches(labels.Set(cs.Labels)) || !fs.Matches(fields.Set{"metadata.name": name, "metadata.namespace": ""}) {
				return
			}
			cs.SetGroupVersionKind(q.res.gvk)
			mu.Lock()
			items = append(items, &cs)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(items, func(a, b runtime.Object) int {
		return strings.Compare(a.(*corev1.ComponentStatus).Name, b.(*corev1.ComponentStatus).Name)
	})
	return q.writeList(a, items, "", "", nil)
}

// componentSelectors parses the list's selectors; only metadata fields
// are known, as upstream.
func (q *request) componentSelectors() (labels.Selector, fields.Selector, error) {
	qs := q.r.URL.Query()
	ls, err := labels.Parse(qs.Get("labelSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(qs.Get("fieldSelector"))
	if err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	return ls, fs, nil
}

// serveLegacy answers the core resources that are not stored,
// componentstatuses and bindings, and reports whether it did.
func (s *Server) serveLegacy(w http.ResponseWriter, r *http.Request, info requestInfo) bool {
	if info.gv != corev1.SchemeGroupVersion || (info.resource != "componentstatuses" && info.resource != "bindings") {
		return false
	}
	rv := s.reviews[info.gv.WithResource(info.resource)]
	if rv == nil {
		return false
	}
	gr := rv.GVR.GroupResource()
	if rv.Namespaced != (info.namespace != "") || info.subresource != "" {
		s.writeError(w, r, apierrors.NewNotFound(gr, info.name))
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	q := &request{Server: s, w: w, r: r, ctx: ctx, info: info}
	var err error
	if info.resource == "bindings" {
		err = q.serveBindings() // no table form: q.res stays nil
	} else {
		q.res = &resource{Resource: rv, gr: gr, gvk: rv.GVR.GroupVersion().WithKind(rv.Kind)}
		err = q.serveComponentStatuses()
	}
	if err != nil {
		s.writeError(w, r, err)
	}
	return true
}
