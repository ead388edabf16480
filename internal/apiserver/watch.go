package apiserver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/internal/apiserver/flowcontrol"
	"github.com/skiff-dev/skiff/internal/storage"
)

// initialEventsEndAnnotation marks the bookmark that ends the initial
// events of a sendInitialEvents watch.
const initialEventsEndAnnotation = "k8s.io/initial-events-end"

// watchIndex picks the equality of a field selector by which the watch
// cache indexes the watcher (the filter still checks the whole selector):
// metadata.name if given, as it names one object, else the first one, such
// as a kubelet's spec.nodeName. It returns "" when there is none.
func watchIndex(selector string) (field, value string) {
	fs, err := fields.ParseSelector(selector)
	if err != nil {
		return "", ""
	}
	for _, r := range fs.Requirements() {
		if r.Operator != selection.Equals && r.Operator != selection.DoubleEquals {
			continue
		}
		if field == "" || r.Field == "metadata.name" {
			field, value = r.Field, r.Value
		}
	}
	return field, value
}

func (q *request) watch() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	filter, err := q.selectors()
	if err != nil {
		return err
	}
	lo := q.listOpts
	ctx := q.ctx
	w, err := q.res.openWatch(ctx, watchRequest{
		prefix:        q.res.nsPrefix(q.info.namespace),
		filter:        filter,
		fieldSelector: q.r.URL.Query().Get("fieldSelector"),
		rv:            lo.ResourceVersion,
		sendInitial:   lo.SendInitialEvents != nil && *lo.SendInitialEvents,
		bookmarks:     lo.AllowWatchBookmarks,
	})
	if err != nil {
		return err
	}
	defer w.Stop()
	defer q.metrics.watcherAdded(q.res.gvk)()
	timeout := watchTimeout(lo.TimeoutSeconds)

	enc := newWatchEncoder(q, a)
	q.w.Header().Set("Content-Type", a.media)
	q.w.Header().Set("Transfer-Encoding", "chunked")
	q.w.WriteHeader(http.StatusOK)
	flusher, _ := q.w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	for _, ev := range w.Initial() {
		if err := enc.write(ev); err != nil {
			return nil
		}
	}
	flush()
	// Initialized: the initial events are sent (a watch from a given
	// resourceVersion has none; its replayed history is already queued),
	// so the watch frees its priority and fairness seats and streams
	// without them. Every other way out frees them when the request ends.
	flowcontrol.WatchInitialized(ctx)

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				return nil
			}
			if err := enc.write(ev); err != nil {
				return nil
			}
			if len(w.Events()) == 0 {
				flush()
			}
		}
	}
}

// watchRequest is what a WATCH asks of the watch cache.
type watchRequest struct {
	prefix        string
	filter        storage.Filter
	fieldSelector string // as given, for the watcher index
	rv            string
	sendInitial   bool
	bookmarks     bool
}

// openWatch starts a cache watch as upstream serves a WATCH: with the
// current objects first for no (or a zero) resourceVersion, from a
// revision for any other, or with the initial events ended by a bookmark
// for sendInitialEvents. Errors are API errors.
func (r *resource) openWatch(ctx context.Context, wr watchRequest) (*storage.Watcher, error) {
	opts := storage.WatchOptions{Prefix: wr.prefix, Filter: wr.filter, Bookmarks: wr.bookmarks}
	opts.IndexField, opts.IndexValue = watchIndex(wr.fieldSelector)
	switch {
	case wr.sendInitial:
		// listOptions has checked resourceVersionMatch as upstream does.
		if !opts.Bookmarks {
			return nil, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", field.ErrorList{
				field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires allowWatchBookmarks=true")})
		}
		if wr.rv == "" {
			if err := r.cache.WaitFresh(ctx); err != nil {
				return nil, storageError(err, r.gr, "")
			}
		}
		opts.Initial, opts.InitialEndBookmark = true, true
	case wr.rv == "" || wr.rv == "0":
		// "Get state and start at most recent": the current objects first.
		if wr.rv == "" {
			if err := r.cache.WaitFresh(ctx); err != nil {
				return nil, storageError(err, r.gr, "")
			}
		}
		opts.Initial = true
	default:
		n, err := parseResourceVersion(wr.rv)
		if err != nil {
			return nil, err
		}
		opts.FromRev = n
	}
	w, err := r.cache.Watch(ctx, opts)
	if err == storage.ErrCompacted {
		return nil, apierrors.NewResourceExpired("too old resource version: " + wr.rv)
	}
	if err != nil {
		return nil, storageError(err, r.gr, "")
	}
	return w, nil
}

// watchTimeout is how long a watch runs: as upstream, no (or a zero)
// timeoutSeconds means a random 30-60 minutes.
func watchTimeout(seconds *int64) time.Duration {
	if seconds != nil && *seconds != 0 {
		return time.Duration(*seconds) * time.Second
	}
	return time.Duration(1800+rand.IntN(1800)) * time.Second
}

// watchEncoder writes watch events in the negotiated framing: one JSON
// object per line, or length-prefixed protobuf WatchEvent frames.
type watchEncoder struct {
	q     *request
	a     accept
	buf   bytes.Buffer
	frame interface{ Write([]byte) (int, error) }
}

func newWatchEncoder(q *request, a accept) *watchEncoder {
	e := &watchEncoder{q: q, a: a}
	if a.media == mediaProtobuf {
		e.frame = protobuf.LengthDelimitedFramer.NewFrameWriter(q.w)
	}
	return e
}

func (e *watchEncoder) object(ev storage.Event) (runtime.Object, []byte, error) {
	if ev.Type == watch.Bookmark {
		obj := e.q.res.New()
		obj.GetObjectKind().SetGroupVersionKind(e.q.res.gvk)
		if e.a.partial {
			// A metadata-only client (metadata informers, the garbage
			// collector) decodes every event as PartialObjectMetadata.
			obj = &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}}
		}
		m, _ := meta.Accessor(obj)
		m.SetResourceVersion(strconv.FormatInt(ev.Rev, 10))
		if storage.IsInitialEnd(ev) {
			m.SetAnnotations(map[string]string{initialEventsEndAnnotation: "true"})
		}
		return obj, nil, nil
	}
	switch {
	case e.a.table:
		t, err := e.q.table([]runtime.Object{ev.Obj.Obj}, "", e.q.r.URL.Query().Get("includeObject"))
		return t, nil, err
	case e.a.partial:
		return partialMetadata(ev.Obj.Obj), nil, nil
	case e.a.media == mediaJSON:
		b, err := ev.Obj.Encoded(e.q.encodeJSON)
		return nil, b, err
	}
	return ev.Obj.Obj, nil, nil
}

func (e *watchEncoder) write(ev storage.Event) error {
	obj, raw, err := e.object(ev)
	if err != nil {
		return err
	}
	e.buf.Reset()
	if e.a.media == mediaProtobuf {
		if err := e.q.codecs.protobuf.Encode(obj, &e.buf); err != nil {
			return err
		}
		we := &metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: bytes.Clone(e.buf.Bytes())}}
		e.buf.Reset()
		if err := e.q.codecs.protobufRaw.Encode(we, &e.buf); err != nil {
			return err
		}
		_, err := e.frame.Write(e.buf.Bytes())
		return err
	}
	if raw == nil {
		if err := e.q.codecs.encoderFor(e.a.media).Encode(obj, &e.buf); err != nil {
			return err
		}
		raw = bytes.TrimRight(e.buf.Bytes(), "\n")
	}
	var line bytes.Buffer
	line.Grow(len(raw) + 32)
	line.WriteString(`{"type":"`)
	line.WriteString(string(ev.Type))
	line.WriteString(`","object":`)
	line.Write(raw)
	line.WriteString("}\n")
	_, err = e.q.w.Write(line.Bytes())
	return err
}
