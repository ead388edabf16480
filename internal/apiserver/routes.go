package apiserver

import (
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Upstream routes requests with a table of paths and, per path, methods:
// a path it has no route for is a 404 that names nothing, a method its
// path does not take is a 405, both before any handler runs. A group it
// does not serve at all falls through to the plain-text 404 of its mux.

// errNoRoute is the 404 for a path under a served group that names no
// resource, subresource or scope that is served.
func errNoRoute() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{},
	}}
}

// errMethodNotAllowed is the 405 for a method the addressed path does not
// take, e.g. PUT on a collection or deletecollection of namespaces.
func errMethodNotAllowed() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusMethodNotAllowed, Reason: metav1.StatusReasonMethodNotAllowed,
		Message: "the server does not allow this method on the requested resource", Details: &metav1.StatusDetails{},
	}}
}

// notFoundPlain is upstream's answer for a path outside every served
// group: its mux's plain-text 404, not a Status.
func notFoundPlain(w http.ResponseWriter) {
	http.Error(w, "404 page not found", http.StatusNotFound)
}

// requestVerb is the API verb of a request with the given method on the
// path info describes, or "" when no verb takes that method there.
func requestVerb(method string, info requestInfo) string {
	switch {
	case info.name == "":
		switch method {
		case http.MethodGet:
			return "list" // watch is served wherever list is
		case http.MethodPost:
			return "create"
		case http.MethodDelete:
			return "deletecollection"
		}
		return ""
	case method == http.MethodPost && info.subresource == "":
		return "" // nothing is created at an object's own path
	}
	switch method {
	case http.MethodGet:
		return "get"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	case http.MethodPost:
		return "create"
	}
	return ""
}

// allowsMethod reports whether res (or the addressed subresource) takes
// the request's method, by the verbs discovery advertises for it.
func allowsMethod(res *resource, method string, info requestInfo) bool {
	verb := requestVerb(method, info)
	if verb == "" {
		return false
	}
	if info.subresource != "" {
		return slices.Contains(subresourceVerbs(info.subresource), verb)
	}
	return slices.Contains(resourceVerbs(res.Resource), verb)
}
