package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/runtime"
)

// serveResource routes a request for /api/v1/... or /apis/g/v/... to the
// verb handler.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request) {
	info, ok := parsePath(r.URL.Path)
	if !s.servesGroup(info.gv.Group) {
		notFoundPlain(w)
		return
	}
	if !ok {
		s.discovery.serveGroupOrVersion(w, r, s, info.gv)
		return
	}
	if info.gv == metricsGV {
		s.serveMetrics(w, r, info)
		return
	}
	if s.serveLegacy(w, r, info) {
		return
	}
	if rv := s.reviews[info.gv.WithResource(info.resource)]; rv != nil {
		s.serveReview(w, r, info, rv)
		return
	}
	res := s.lookupResource(info.gv.WithResource(info.resource))
	if res == nil {
		s.writeError(w, r, errNoRoute())
		return
	}
	if res.custom != nil && r.Method == http.MethodPost && info.name == "" && res.custom.terminating.Load() {
		s.writeError(w, r, errCustomTerminating(res))
		return
	}
	if res.Namespaced != (info.namespace != "") {
		// A namespaced resource addressed without a namespace is only
		// served as a collection, for list/watch across namespaces.
		if !res.Namespaced || info.name != "" {
			s.writeError(w, r, errNoRoute())
			return
		}
		if r.Method != http.MethodGet {
			s.writeError(w, r, errMethodNotAllowed())
			return
		}
	}
	if sub, rest, ok := splitConnect(info); ok {
		s.serveConnect(w, r, info, sub, rest)
		return
	}
	if info.subresource != "" && !res.HasSubresource(info.subresource) {
		s.writeError(w, r, errNoRoute())
		return
	}
	if !allowsMethod(res, r.Method, info) {
		s.writeError(w, r, errMethodNotAllowed())
		return
	}
	var listOpts *metainternalversion.ListOptions
	if r.Method == http.MethodGet && info.name == "" {
		var err error
		if listOpts, err = listOptions(r.URL.Query()); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	isWatch := listOpts != nil && listOpts.Watch
	ctx := r.Context()
	if !isWatch {
		// Watches end on their own timeoutSeconds; everything else gets
		// upstream's default --request-timeout.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	req := &request{Server: s, w: w, r: r, ctx: ctx, info: info, res: res, listOpts: listOpts}
	var err error
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		err = req.checkWriteOptions()
	}
	switch {
	case err != nil:
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
		err = errMethodNotAllowed()
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
	// listOpts are the decoded query options of a LIST or WATCH.
	listOpts *metainternalversion.ListOptions
}

// body reads the request body, refusing more than maxBodyBytes whatever
// the Content-Length says (chunked bodies too). A body still arriving when
// the request's deadline passes is a 504, as upstream's timeout filter
// answers, not a read error.
func (q *request) body() ([]byte, error) {
	if deadline, ok := q.ctx.Deadline(); ok {
		rc := http.NewResponseController(q.w)
		if rc.SetReadDeadline(deadline) == nil {
			defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
		}
	}
	lr := &io.LimitedReader{R: q.r.Body, N: maxBodyBytes + 1}
	data, err := io.ReadAll(lr)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(q.ctx.Err(), context.DeadlineExceeded) {
			return nil, errRequestTimeout()
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if lr.N <= 0 {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	}
	return data, nil
}

// errRequestTimeout is upstream's answer to a request that outlives its
// deadline.
func errRequestTimeout() error {
	return apierrors.NewTimeoutError("request did not complete within the allotted timeout", 0)
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
	if q.res != nil && q.res.custom != nil && a.media == mediaProtobuf && !a.table && !a.partial {
		return q.acceptWithoutProtobuf()
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
