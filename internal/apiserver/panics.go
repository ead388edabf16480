package apiserver

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/crash"
)

// recoverPanic, deferred by ServeHTTP, turns a panic in any handler into a
// 500 Status for that request alone: logged with its stack and counted in
// skiff_panics_total{component="apiserver"}.
func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request) {
	rec := recover()
	if rec == nil {
		return
	}
	if rec == http.ErrAbortHandler { //nolint:errorlint // a sentinel panic value, never wrapped
		panic(rec)
	}
	crash.Recovered(s.log.With("method", r.Method, "path", r.URL.Path), "apiserver", rec)
	s.writeError(w, r, &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Reason: metav1.StatusReasonInternalError,
		Message: "This request caused apiserver to panic. Look in the logs for details.",
	}})
}
