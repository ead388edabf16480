package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// serveResource routes a request for /api/v1/... or /apis/g/v/... to the
// verb handler.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request) {
	info, ok := parsePath(r.URL.Path)
	if !ok {
		s.discovery.serveGroupOrVersion(w, r, s, info.gv)
		return
	}
	if info.gv == metricsGV {
		s.serveMetrics(w, r, info)
		return
	}
	if rv := s.reviews[info.gv.WithResource(info.resource)]; rv != nil {
		s.serveReview(w, r, info, rv)
		return
	}
	res := s.resources[info.gv.WithResource(info.resource)]
	if res == nil {
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{Group: info.gv.Group, Resource: info.resource}, ""))
		return
	}
	if res.Namespaced != (info.namespace != "") && !(res.Namespaced && info.name == "" && r.Method == http.MethodGet) {
		// A namespaced resource addressed without a namespace is only
		// valid for list/watch across namespaces.
		s.writeError(w, r, apierrors.NewNotFound(res.gr, info.name))
		return
	}
	if sub, rest, ok := splitConnect(info); ok {
		s.serveConnect(w, r, info, sub, rest)
		return
	}
	if info.subresource != "" && !res.HasSubresource(info.subresource) {
		s.writeError(w, r, apierrors.NewNotFound(res.gr, info.name))
		return
	}
	q := r.URL.Query()
	isWatch := q.Get("watch") == "true" || q.Get("watch") == "1"
	ctx := r.Context()
	if !isWatch {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	req := &request{Server: s, w: w, r: r, ctx: ctx, info: info, res: res}
	var err error
	switch {
	case r.Method == http.MethodGet && info.name == "" && isWatch:
		err = req.watch()
	case r.Method == http.MethodGet && info.name == "":
		err = req.list()
	case r.Method == http.MethodGet:
		err = req.get()
	case r.Method == http.MethodPost && info.name == "":
		err = req.create()
	case r.Method == http.MethodPost && info.subresource == "binding":
		err = req.bind()
	case r.Method == http.MethodPost && info.subresource == "eviction" && info.resource == "pods":
		err = req.evict()
	case r.Method == http.MethodPost && info.subresource == "token" && info.resource == "serviceaccounts":
		err = req.requestToken()
	case r.Method == http.MethodPut && info.name != "":
		err = req.update()
	case r.Method == http.MethodPatch && info.name != "":
		err = req.patch()
	case r.Method == http.MethodDelete && info.name != "":
		err = req.delete()
	case r.Method == http.MethodDelete:
		err = req.deleteCollection()
	default:
		err = apierrors.NewMethodNotSupported(res.gr, strings.ToLower(r.Method))
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

// request carries one resource request through its handler.
type request struct {
	*Server
	w    http.ResponseWriter
	r    *http.Request
	ctx  context.Context
	info requestInfo
	res  *resource
}

// body reads the request body, refusing more than maxBodyBytes.
func (q *request) body() ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(q.r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(data) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	}
	return data, nil
}

func (q *request) dryRun() bool {
	for _, v := range q.r.URL.Query()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}

// accept negotiates the response format; an unsupported transformation
// (as=...) is 406.
func (q *request) accept() (accept, error) {
	a, err := negotiate(q.r)
	if err != nil {
		return a, notAcceptable(err.Error())
	}
	if a.table && !q.canTable() {
		return q.acceptWithoutTable()
	}
	return a, nil
}

// readObject reads and decodes the request body as the resource's kind.
func (q *request) readObject() (runtime.Object, error) {
	data, err := q.body()
	if err != nil {
		return nil, err
	}
	return q.decodeBody(data, q.r.Header.Get("Content-Type"))
}
