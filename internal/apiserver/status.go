package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	grpccodes "google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/storage"
)

// toStatus turns any error into the Kubernetes Status the client sees.
// Errors that are not API errors become 500 InternalError; their text is
// logged but still returned, as upstream does.
func toStatus(err error) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		return &st
	}
	switch {
	case isTooLargeForEtcd(err):
		// Nothing was stored: etcd refuses the whole transaction.
		return &apierrors.NewRequestEntityTooLargeError(rpctypes.ErrRequestTooLarge.Error()).ErrStatus
	case errors.Is(err, context.DeadlineExceeded):
		return &errRequestTimeout().(*apierrors.StatusError).ErrStatus
	}
	return &apierrors.NewInternalError(err).ErrStatus
}

// isTooLargeForEtcd reports whether etcd (or its client, for a message
// above the gRPC send limit) refused a write for its size.
func isTooLargeForEtcd(err error) bool {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if st, ok := grpcstatus.FromError(e); ok && st.Code() == grpccodes.ResourceExhausted &&
			strings.Contains(st.Message(), "larger than max") {
			return true
		}
	}
	return false
}

// storageError maps storage errors to API errors for the named object.
func storageError(err error, gr schema.GroupResource, name string) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("The provided resourceVersion is too old (compacted)")
	case errors.Is(err, storage.ErrTooLargeRV):
		return apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %v", err), 1)
	}
	return err
}

const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// writeError writes err as a Status in the format the client accepts.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := toStatus(err)
	st.Kind, st.APIVersion = "Status", "v1"
	if st.Code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", st.Code, "msg", st.Message)
	}
	a, aerr := negotiate(r)
	if aerr != nil || a.table || a.partial {
		a = accept{media: mediaJSON}
	}
	s.writeObject(w, a.media, int(st.Code), st)
}

// writeObject encodes obj (which must carry its apiVersion and kind).
func (s *Server) writeObject(w http.ResponseWriter, media string, code int, obj runtime.Object) {
	w.Header().Set("Content-Type", media)
	w.WriteHeader(code)
	if err := s.codecs.encoderFor(media).Encode(obj, w); err != nil {
		s.log.Warn("encode response", "err", err, "type", fmt.Sprintf("%T", obj))
	}
}

// writeRaw writes already encoded JSON bytes.
func writeRaw(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", mediaJSON)
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func notAcceptable(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotAcceptable, Reason: metav1.StatusReasonNotAcceptable, Message: msg,
	}}
}

// unsupportedMediaType is the 415 for a body in a format the server does
// not read; as upstream, it does not repeat the client's Content-Type.
func unsupportedMediaType() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
	}}
}

// unsupportedPatchType is upstream's 415 for a PATCH whose Content-Type
// is no patch format.
func unsupportedPatchType() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: "415: Unsupported Media Type", Details: &metav1.StatusDetails{},
	}}
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }
