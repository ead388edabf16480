package apiserver

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// Anonymous is who a request without credentials is, as upstream names it.
var anonymousUser = &authn.User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}

// authenticate identifies the caller. A request that presents credentials
// the server cannot verify is 401; one that presents none is anonymous and
// left to the authorizer, as upstream with anonymous auth enabled.
func (s *Server) authenticate(r *http.Request) (*authn.User, error) {
	if s.authenticator == nil {
		return nil, nil
	}
	u, ok, err := s.authenticator.Authenticate(r)
	if err == nil && ok {
		return u, nil
	}
	if hasCredentials(r) {
		return nil, apierrors.NewUnauthorized("Unauthorized")
	}
	return anonymousUser, nil
}

func hasCredentials(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" {
		return true
	}
	return r.TLS != nil && len(r.TLS.PeerCertificates) > 0
}

// requestAttributes describes r for the authorizers, as upstream's
// RequestInfoFactory does: the verb from the method and the URL, the
// namespace of namespace objects, the name of a list or watch narrowed to
// one object by a metadata.name field selector, and the field selector of a
// list, watch or deletecollection.
func requestAttributes(r *http.Request, u *authn.User) authz.Attributes {
	a := authz.Attributes{User: u, Path: r.URL.Path, Verb: strings.ToLower(r.Method)}
	path := r.URL.Path
	if !strings.HasPrefix(path, "/api/") && !strings.HasPrefix(path, "/apis/") {
		return a
	}
	info, ok := parsePath(path)
	if !ok {
		// Discovery documents are non-resource paths.
		return a
	}
	a.ResourceRequest = true
	a.APIGroup, a.APIVersion = info.gv.Group, info.gv.Version
	a.Namespace, a.Resource, a.Name, a.Subresource = info.namespace, info.resource, info.name, info.subresource
	if info.resource == "namespaces" && info.name != "" {
		a.Namespace = info.name
	}
	if sub, _, ok := splitConnect(info); ok {
		// pods/proxy/some/path authorizes pods/proxy.
		a.Subresource = sub
	}
	q := r.URL.Query()
	watch := q.Get("watch") == "true" || q.Get("watch") == "1"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case a.Name == "" && watch:
			a.Verb = "watch"
		case a.Name == "":
			a.Verb = "list"
		default:
			a.Verb = "get"
		}
		if a.Name == "" {
			if sel, err := fields.ParseSelector(q.Get("fieldSelector")); err == nil {
				if name, ok := sel.RequiresExactMatch("metadata.name"); ok {
					a.Name = name
				}
				a.FieldSelector = selectorTerms(sel)
			}
		}
	case http.MethodPost:
		a.Verb = "create"
	case http.MethodPut:
		a.Verb = "update"
	case http.MethodPatch:
		a.Verb = "patch"
	case http.MethodDelete:
		if a.Name == "" {
			a.Verb = "deletecollection"
			if sel, err := fields.ParseSelector(q.Get("fieldSelector")); err == nil {
				a.FieldSelector = selectorTerms(sel)
			}
		} else {
			a.Verb = "delete"
		}
	}
	return a
}

// selectorTerms are a field selector's requirements, nil for none.
func selectorTerms(sel fields.Selector) fields.Requirements {
	if sel.Empty() {
		return nil
	}
	return sel.Requirements()
}

// authorize asks the authorizer chain about a; anything but allow is 403.
func (s *Server) authorize(r *http.Request, a authz.Attributes) error {
	if s.authorizer == nil {
		return nil
	}
	d, reason, err := s.authorizer.Authorize(r.Context(), a)
	if d == authz.Allow {
		return nil
	}
	if err != nil && reason == "" {
		s.log.Warn("authorization error", "user", userName(a.User), "verb", a.Verb, "resource", a.Resource, "err", err)
	}
	return forbidden(a, reason)
}

// forbidden is upstream's 403 for a refused request.
func forbidden(a authz.Attributes, reason string) error {
	msg := authz.ForbiddenMessage(a, reason)
	if !a.ResourceRequest {
		return apierrors.NewForbidden(schema.GroupResource{}, "", fmt.Errorf("%s", msg))
	}
	gr := schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
	if a.Subresource != "" {
		gr.Resource += "/" + a.Subresource
	}
	return apierrors.NewForbidden(gr, a.Name, fmt.Errorf("%s", msg))
}

func userName(u *authn.User) string {
	if u == nil {
		return ""
	}
	return u.Name
}

// Impersonation headers, as kubectl --as, --as-group, --as-uid send them.
const (
	impersonateUser        = "Impersonate-User"
	impersonateGroup       = "Impersonate-Group"
	impersonateUID         = "Impersonate-Uid"
	impersonateExtraPrefix = "Impersonate-Extra-"
)

// impersonate replaces the caller by the user named in the impersonation
// headers, after checking the impersonate verb on each part of that
// identity as upstream does. It returns u unchanged without headers.
func (s *Server) impersonate(r *http.Request, u *authn.User) (*authn.User, error) {
	name := r.Header.Get(impersonateUser)
	groups := r.Header.Values(impersonateGroup)
	uid := r.Header.Get(impersonateUID)
	var extraKeys []string
	for k := range r.Header {
		if strings.HasPrefix(k, impersonateExtraPrefix) {
			extraKeys = append(extraKeys, k)
		}
	}
	if name == "" {
		if len(groups) > 0 || uid != "" || len(extraKeys) > 0 {
			return nil, apierrors.NewBadRequest("requested impersonation of groups, uid or extra without impersonating a user")
		}
		return u, nil
	}
	check := func(a authz.Attributes) error {
		a.User, a.Verb, a.ResourceRequest = u, "impersonate", true
		return s.authorize(r, a)
	}
	next := &authn.User{Name: name, UID: uid}
	if ns, sa, ok := strings.Cut(strings.TrimPrefix(name, "system:serviceaccount:"), ":"); ok && strings.HasPrefix(name, "system:serviceaccount:") {
		if err := check(authz.Attributes{Resource: "serviceaccounts", Namespace: ns, Name: sa}); err != nil {
			return nil, err
		}
		if len(groups) == 0 {
			groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
		}
	} else if err := check(authz.Attributes{Resource: "users", Name: name}); err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := check(authz.Attributes{Resource: "groups", Name: g}); err != nil {
			return nil, err
		}
	}
	if uid != "" {
		if err := check(authz.Attributes{APIGroup: "authentication.k8s.io", Resource: "uids", Name: uid}); err != nil {
			return nil, err
		}
	}
	for _, k := range extraKeys {
		key := strings.ToLower(strings.TrimPrefix(k, impersonateExtraPrefix))
		// kubectl percent-encodes extra keys that are not valid header
		// names.
		if unescaped, err := url.PathUnescape(key); err == nil {
			key = unescaped
		}
		for _, v := range r.Header.Values(k) {
			if err := check(authz.Attributes{APIGroup: "authentication.k8s.io", Resource: "userextras", Subresource: key, Name: v}); err != nil {
				return nil, err
			}
			if next.Extra == nil {
				next.Extra = map[string][]string{}
			}
			next.Extra[key] = append(next.Extra[key], v)
		}
	}
	next.Groups = append([]string{}, groups...)
	if name != anonymousUser.Name && !slices.Contains(next.Groups, "system:authenticated") {
		next.Groups = append(next.Groups, "system:authenticated")
	}
	return next, nil
}
