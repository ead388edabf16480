package apiserver

import (
	"net/http"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// admitConnect runs the admission chain on an exec, attach or
// port-forward request to a pod, as upstream does for connect
// subresources: operation CONNECT, the request's options (PodExecOptions,
// PodAttachOptions, PodPortForwardOptions) as the object. A webhook or
// policy can so refuse, say, attaching to a pod.
func (s *Server) admitConnect(r *http.Request, info requestInfo, sub string) error {
	if s.admission == nil {
		return nil
	}
	opts, kind, err := connectOptions(r, sub)
	if err != nil || opts == nil {
		return err
	}
	u, _ := authn.UserFrom(r.Context())
	a := &admission.Attributes{
		Operation: admission.Connect, Kind: corev1.SchemeGroupVersion.WithKind(kind), Resource: podsGVR, Subresource: sub,
		Namespace: info.namespace, Name: info.name, Object: opts, User: u,
	}
	if err := s.admission.Admit(r.Context(), a); err != nil {
		return err
	}
	return s.admission.Validate(r.Context(), a)
}

// connectOptions reads a connect request's options from its query, as
// kubectl sends them.
func connectOptions(r *http.Request, sub string) (runtime.Object, string, error) {
	q := r.URL.Query()
	flag := func(k string) bool { b, _ := strconv.ParseBool(q.Get(k)); return b }
	switch sub {
	case "exec":
		return &corev1.PodExecOptions{Container: q.Get("container"), Command: q["command"],
			Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr"), TTY: flag("tty")}, "PodExecOptions", nil
	case "attach":
		return &corev1.PodAttachOptions{Container: q.Get("container"),
			Stdin: flag("stdin"), Stdout: flag("stdout"), Stderr: flag("stderr"), TTY: flag("tty")}, "PodAttachOptions", nil
	case "portforward":
		o := &corev1.PodPortForwardOptions{}
		for _, p := range q["ports"] {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return nil, "", apierrors.NewBadRequest("invalid port " + strconv.Quote(p))
			}
			o.Ports = append(o.Ports, int32(n))
		}
		return o, "PodPortForwardOptions", nil
	}
	return nil, "", nil
}
