package apiserver

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/storage"
)

func (q *request) get() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	var obj runtime.Object
	if q.r.URL.Query().Get("resourceVersion") == "0" {
		// Any version will do: serve from the cache.
		<-q.res.cache.Ready()
		e, ok := q.res.cache.Get(q.res.key(q.info.namespace, q.info.name))
		if !ok {
			return apierrors.NewNotFound(q.res.gr, q.info.name)
		}
		obj = e.Obj
	} else {
		obj, _, err = q.res.get(q.ctx, q.info.namespace, q.info.name)
		if err != nil {
			return err
		}
	}
	if q.info.subresource == "scale" {
		sc, err := toScale(q.res, obj)
		if err != nil {
			return err
		}
		obj = sc
	}
	q.respond(a, http.StatusOK, obj)
	return nil
}

// respond writes one object in the negotiated form.
func (q *request) respond(a accept, code int, obj runtime.Object) {
	switch {
	case a.table:
		t, err := q.table([]runtime.Object{obj}, "", q.r.URL.Query().Get("includeObject"))
		if err != nil {
			q.writeError(q.w, q.r, err)
			return
		}
		obj = t
	case a.partial:
		obj = partialMetadata(obj)
	}
	q.writeObject(q.w, a.media, code, obj)
}

// selectors parses labelSelector and fieldSelector into a cache filter.
func (q *request) selectors() (storage.Filter, error) {
	qs := q.r.URL.Query()
	return q.res.selectorFilter(qs.Get("labelSelector"), qs.Get("fieldSelector"))
}

// selectorFilter is the cache filter of a label and a field selector, nil
// when both are empty. A field the kind does not support is a 400.
func (r *resource) selectorFilter(labelSelector, fieldSelector string) (storage.Filter, error) {
	ls, err := labels.Parse(labelSelector)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(fieldSelector)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	if !fs.Empty() {
		for _, req := range fs.Requirements() {
			if !r.fieldKeys[req.Field] {
				return nil, apierrors.NewBadRequest(r.FieldLabelError(req.Field))
			}
		}
	}
	if ls.Empty() && fs.Empty() {
		return nil, nil
	}
	return func(e *storage.Entry) bool {
		return ls.Matches(e.Labels) && fs.Matches(e.Fields)
	}, nil
}

// continueToken is the opaque `continue` value of a paginated list.
type continueToken struct {
	APIVersion string `json:"v"`
	Rev        int64  `json:"rv"`
	Start      string `json:"start"`
}

func (q *request) list() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	filter, err := q.selectors()
	if err != nil {
		return err
	}
	rv, limit, cont := q.listOpts.ResourceVersion, q.listOpts.Limit, q.listOpts.Continue
	prefix := q.res.nsPrefix(q.info.namespace)

	if cont != "" || (limit > 0 && rv == "") {
		if cont != "" && rv != "" && rv != "0" {
			return apierrors.NewBadRequest("specifying resource version is not allowed when using continue")
		}
		return q.listFromEtcd(a, prefix, filter, limit, cont)
	}
	switch rv {
	case "":
		if !q.cacheFresh() {
			// A consistent read the cache cannot serve in time is read
			// from etcd instead, as upstream falls back to storage.
			return q.listFromEtcd(a, prefix, filter, 0, "")
		}
	case "0":
		<-q.res.cache.Ready()
	default:
		n, err := parseResourceVersion(rv)
		if err != nil {
			return err
		}
		if err := q.res.cache.WaitRev(q.ctx, n); err != nil {
			return storageError(err, q.res.gr, "")
		}
	}
	entries, rev := q.res.cache.List(prefix, filter)
	if a.media == mediaJSON && !a.table && !a.partial {
		return q.writeJSONList(entries, rev)
	}
	// Custom resources have no protobuf form: accept() never picks it.
	if a.media == mediaProtobuf && !a.table && !a.partial && q.res.custom == nil && streamableProtoList(q.res.NewList()) {
		return q.writeProtobufList(entries, rev)
	}
	objs := make([]runtime.Object, len(entries))
	for i, e := range entries {
		objs[i] = e.Obj
	}
	return q.writeList(a, objs, strconv.FormatInt(rev, 10), "", nil)
}

// listFromEtcd serves a paginated list from a consistent etcd snapshot.
func (q *request) listFromEtcd(a accept, prefix string, filter storage.Filter, limit int64, cont string) error {
	var rev int64
	start := prefix
	if cont != "" {
		tok, err := decodeContinue(cont)
		if err != nil {
			return err
		}
		rev, start = max(tok.Rev, 0), prefix+tok.Start
	}
	var objs []runtime.Object
	var next string
	for {
		page, r, more, err := q.res.store.ListPage(q.ctx, prefix, start, rev, limit)
		if err != nil {
			if err == storage.ErrCompacted {
				return compactedContinue(strings.TrimPrefix(start, prefix))
			}
			return err
		}
		rev = r
		for _, kv := range page {
			obj, err := q.res.decode(kv.Value, kv.Rev)
			if err != nil {
				return err
			}
			if filter != nil {
				l, f := q.res.attrs(obj)
				if !filter(&storage.Entry{Labels: l, Fields: storage.NewFields(f)}) {
					continue
				}
			}
			objs = append(objs, obj)
		}
		if !more || len(page) == 0 {
			next = ""
			break
		}
		start = page[len(page)-1].Key + "\x00"
		next = strings.TrimPrefix(start, prefix)
		if limit > 0 && int64(len(objs)) >= limit {
			break
		}
	}
	if next == "" {
		return q.writeList(a, objs, strconv.FormatInt(rev, 10), "", nil)
	}
	var remaining *int64
	if filter == nil {
		// Only an unfiltered list knows how many items are left; with a
		// selector upstream leaves the count unset.
		n, err := q.countFrom(prefix, start, rev)
		if err != nil {
			return err
		}
		remaining = &n
	}
	return q.writeList(a, objs, strconv.FormatInt(rev, 10), encodeContinue(rev, next), remaining)
}

// latestRev in a continue token means "continue at the latest revision":
// the token a 410 offers once the original snapshot is compacted away.
const latestRev = -1

// decodeContinue parses a continue token, refusing a malformed one with
// upstream's 400 and messages.
func decodeContinue(cont string) (continueToken, error) {
	var tok continueToken
	invalid := func(detail string) error {
		return apierrors.NewBadRequest("invalid continue token: continue key is not valid" + detail)
	}
	raw, err := base64.RawURLEncoding.DecodeString(cont)
	if err != nil {
		return tok, invalid(": " + err.Error())
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		return tok, invalid(": " + err.Error())
	}
	switch {
	case tok.APIVersion != "meta.k8s.io/v1":
		return tok, invalid(": server does not recognize this encoded version " + tok.APIVersion)
	case tok.Rev == 0 || (tok.Rev < 0 && tok.Rev != latestRev):
		return tok, invalid(": incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
	case tok.Start == "":
		return tok, invalid(": encoded start key empty (version meta.k8s.io/v1)")
	}
	// The start key must stay inside the listed prefix: no "..".
	if key := "/" + strings.TrimPrefix(tok.Start, "/"); path.Clean(key) != key {
		return tok, invalid(": " + tok.Start)
	}
	return tok, nil
}

// cacheFresh waits (a few seconds at most) for the watch cache to reach
// etcd's current revision, for a consistent read.
func (q *request) cacheFresh() bool {
	select {
	case <-q.res.cache.Ready():
	default:
		return false
	}
	return q.res.cache.WaitFresh(q.ctx) == nil
}

func encodeContinue(rev int64, start string) string {
	raw, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", Rev: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(raw)
}

// compactedContinue is the 410 for a continue token whose snapshot is
// gone. Like upstream it carries a token that resumes from the same key at
// the latest revision, for clients that accept an inconsistent list.
func compactedContinue(start string) error {
	err := apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. " +
		"You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. " +
		"Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
	err.ErrStatus.ListMeta.Continue = encodeContinue(latestRev, start)
	return err
}

// countFrom counts the keys in [start, end of prefix) at revision rev.
func (q *request) countFrom(prefix, start string, rev int64) (int64, error) {
	resp, err := q.res.store.Client().Get(q.ctx, start,
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithRev(rev), clientv3.WithCountOnly())
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return 0, compactedContinue(strings.TrimPrefix(start, prefix))
		}
		return 0, fmt.Errorf("etcd count %s: %w", prefix, err)
	}
	return resp.Count, nil
}

func (q *request) writeList(a accept, objs []runtime.Object, rv, cont string, remaining *int64) error {
	var out runtime.Object
	switch {
	case a.table:
		t, err := q.table(objs, rv, q.r.URL.Query().Get("includeObject"))
		if err != nil {
			return err
		}
		t.Continue, t.RemainingItemCount = cont, remaining
		out = t
	case a.partial:
		out = partialMetadataList(objs, rv, cont, remaining)
	default:
		l := q.res.newList(rv, cont, remaining)
		fillList(l, objs)
		out = l
	}
	q.writeObject(q.w, a.media, http.StatusOK, out)
	return nil
}

// writeJSONList writes a list by joining the cached JSON of each item, so
// that a LIST from many clients encodes every object once. Items are
// streamed to the client rather than gathered into one body, so concurrent
// large lists cost little beyond the shared cached encodings.
func (q *request) writeJSONList(entries []*storage.Entry, rev int64) error {
	// Encode the first items before answering, so that an encoding error
	// (which a typed object practically never has) can still become a
	// Status.
	for _, e := range entries[:min(len(entries), 16)] {
		if _, err := e.Encoded(q.encodeJSON); err != nil {
			return err
		}
	}
	q.w.Header().Set("Content-Type", mediaJSON)
	q.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(q.w, 32<<10)
	fmt.Fprintf(bw, `{"kind":"%s","apiVersion":"%s","metadata":{"resourceVersion":"%d"},"items":[`,
		q.res.listKind(), q.res.GVR.GroupVersion().String(), rev)
	for i, e := range entries {
		b, err := e.Encoded(q.encodeJSON)
		if err != nil {
			// Too late for a Status: cut the response so that the client
			// sees an error rather than a short list.
			q.log.Error("encode list item", "resource", q.res.gr.String(), "err", err)
			panic(http.ErrAbortHandler)
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		if _, err := bw.Write(b); err != nil {
			return nil // the client went away
		}
	}
	bw.WriteString("]}\n")
	_ = bw.Flush()
	return nil
}

// encodeJSON encodes obj as compact JSON without a trailing newline.
func (s *Server) encodeJSON(obj runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	if err := s.codecs.json.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
