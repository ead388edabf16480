package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
)

// usageHandler serves the sampled history to callers whose own token may
// list metrics.k8s.io pods everywhere: the history is what they could read
// from the API server themselves, only older.
type usageHandler struct {
	sampler *sampler
	access  *accessChecker
}

// usageResponse is the body of /dashboard/usage.
type usageResponse struct {
	IntervalSeconds float64  `json:"intervalSeconds"`
	Samples         []Sample `json:"samples"`
}

func (h *usageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	auth := r.Header.Get("Authorization")
	if auth == "" {
		http.Error(w, "a bearer token is required", http.StatusUnauthorized)
		return
	}
	allowed, err := h.access.canListPodMetrics(r.Context(), auth)
	switch {
	case errors.Is(err, errUnauthorized):
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	case !allowed:
		http.Error(w, "listing pods in metrics.k8s.io is not allowed for this token", http.StatusForbidden)
		return
	}
	resp := usageResponse{IntervalSeconds: h.sampler.interval.Seconds(), Samples: h.sampler.recent()}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		h.sampler.log.Debug("dashboard: write usage", "err", err)
	}
}

// errUnauthorized is returned when the API server does not accept the
// token at all.
var errUnauthorized = errors.New("the API server did not accept the token")

// accessChecker asks the API server, with the caller's own credentials,
// whether the caller may do something (a SelfSubjectAccessReview).
type accessChecker struct {
	upstream *url.URL
	client   *http.Client
}

func (a *accessChecker) canListPodMetrics(ctx context.Context, authorization string) (bool, error) {
	review := authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: "list", Group: "metrics.k8s.io", Resource: "pods",
		}},
	}
	review.APIVersion, review.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
	body, err := json.Marshal(review)
	if err != nil {
		return false, err
	}
	u := *a.upstream
	u.Path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", authorization)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("access review: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return false, errUnauthorized
	case resp.StatusCode == http.StatusForbidden:
		// A caller that may not even ask is not allowed.
		return false, nil
	case resp.StatusCode/100 != 2:
		return false, fmt.Errorf("access review: %s", resp.Status)
	}
	var out authorizationv1.SelfSubjectAccessReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return false, fmt.Errorf("access review: decode: %w", err)
	}
	return out.Status.Allowed, nil
}
