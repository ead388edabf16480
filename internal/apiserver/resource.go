package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/storage"
)

// resource joins a served resource's description to its storage.
type resource struct {
	*apis.Resource
	gr     schema.GroupResource
	gvk    schema.GroupVersionKind
	prefix string // etcd prefix, ends in "/"
	store  *storage.Store
	cache  *storage.Cache
	codecs *codecs

	// hasSpec and hasStatus say whether the Go type has Spec/Status fields;
	// generation tracks spec changes and the main resource cannot change status.
	hasSpec   bool
	hasStatus bool
	// fieldKeys are the field-selector labels the kind supports.
	fieldKeys map[string]bool
	// reservations, when set, says which reservation keys an update must
	// create and delete together with the object (a Service's addresses).
	reservations func(next, cur runtime.Object) ([]storage.KV, []string, error)
	// custom is set for a version of a CustomResourceDefinition: objects
	// are unstructured and stored as JSON (crd_resource.go).
	custom *customInfo
	// managers track metadata.managedFields (managedfields.go).
	managers fieldManagers
}

// reservationChanges are the reservation keys an update of cur to next
// creates and releases.
func (r *resource) reservationChanges(next, cur runtime.Object) ([]storage.KV, []string, error) {
	if r.reservations == nil {
		return nil, nil, nil
	}
	return r.reservations(next, cur)
}

func newResource(r *apis.Resource, st *storage.Store, c *codecs, history int) *resource {
	gr := r.GVR.GroupResource()
	stored := gr
	if r.Storage != nil && r.Storage.Resource.Resource != "" {
		stored = r.Storage.Resource
	}
	prefix := "/registry/" + stored.Resource + "/"
	if stored.Group != "" {
		prefix = "/registry/" + stored.Resource + "." + stored.Group + "/"
	}
	t := reflect.TypeOf(r.New()).Elem()
	_, hasSpec := t.FieldByName("Spec")
	_, hasStatus := t.FieldByName("Status")
	res := &resource{
		Resource:  r,
		gr:        gr,
		gvk:       r.GVR.GroupVersion().WithKind(r.Kind),
		prefix:    prefix,
		store:     st,
		codecs:    c,
		hasSpec:   hasSpec,
		hasStatus: hasStatus && r.HasSubresource("status"),
	}
	_, fs := res.attrs(r.New())
	res.fieldKeys = make(map[string]bool, len(fs))
	for k := range fs {
		res.fieldKeys[k] = true
	}
	res.cache = storage.NewCache(st, storage.CacheConfig{Prefix: prefix, Decode: res.decode, Attrs: res.attrs, History: history})
	return res
}

// key is the etcd key of an object; nsPrefix the prefix of one namespace.
func (r *resource) key(ns, name string) string {
	if r.Namespaced {
		return r.prefix + ns + "/" + name
	}
	return r.prefix + name
}

func (r *resource) nsPrefix(ns string) string {
	if r.Namespaced && ns != "" {
		return r.prefix + ns + "/"
	}
	return r.prefix
}

// decode reads a stored protobuf value and stamps it with rev.
func (r *resource) decode(data []byte, rev int64) (runtime.Object, error) {
	if r.custom != nil {
		return r.decodeCustom(data, rev)
	}
	into := r.New()
	if r.Storage != nil {
		into = r.Storage.New()
	}
	obj, _, err := r.codecs.protobuf.Decode(data, nil, into)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", r.gr, err)
	}
	if r.Storage != nil {
		if obj, err = r.Storage.FromStorage(obj); err != nil {
			return nil, fmt.Errorf("convert stored %s to %s: %w", r.gr, r.gvk.Version, err)
		}
	}
	obj.GetObjectKind().SetGroupVersionKind(r.gvk)
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	return obj, nil
}

// encode serialises obj for storage without its resourceVersion, which
// etcd's revision supplies.
func (r *resource) encode(obj runtime.Object) ([]byte, error) {
	if r.custom != nil {
		return r.encodeCustom(obj)
	}
	gvk := r.gvk
	if r.Storage != nil {
		stored, err := r.Storage.ToStorage(obj)
		if err != nil {
			return nil, fmt.Errorf("convert %s %s to its storage form: %w", r.gvk.Version, r.gr, err)
		}
		obj, gvk = stored, r.Storage.GVK
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	var buf bytes.Buffer
	if err := r.codecs.protobuf.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.gr, err)
	}
	return buf.Bytes(), nil
}

func (r *resource) attrs(obj runtime.Object) (labels.Set, fields.Set) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	fs := fields.Set{"metadata.name": m.GetName()}
	if r.Namespaced {
		fs["metadata.namespace"] = m.GetNamespace()
	}
	if r.FieldSet != nil {
		for k, v := range r.FieldSet(obj) {
			fs[k] = v
		}
	}
	return labels.Set(m.GetLabels()), fs
}

func (r *resource) get(ctx context.Context, ns, name string) (runtime.Object, int64, error) {
	kv, err := r.store.Get(ctx, r.key(ns, name))
	if err != nil {
		return nil, 0, storageError(err, r.gr, name)
	}
	obj, err := r.decode(kv.Value, kv.Rev)
	return obj, kv.Rev, err
}

func (r *resource) create(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	data, err := r.encode(obj)
	if err != nil {
		return nil, err
	}
	rev, err := r.store.Create(ctx, r.key(m.GetNamespace(), m.GetName()), data)
	if err != nil {
		return nil, storageError(err, r.gr, m.GetName())
	}
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	return obj, nil
}

// errDeleteInstead is returned by an update function when the update
// removed the last finalizer of an object being deleted.
var errDeleteInstead = errors.New("delete instead of update")

// updateFunc computes the new object from a private copy of the current one.
type updateFunc func(cur runtime.Object) (runtime.Object, error)

// guaranteedUpdate applies fn to the current object and writes the result,
// retrying on conflicts caused by concurrent writers. fn enforces any
// client precondition itself. An update that changes nothing is not written.
func (r *resource) guaranteedUpdate(ctx context.Context, ns, name string, fn updateFunc) (runtime.Object, error) {
	key := r.key(ns, name)
	kv, err := r.store.Get(ctx, key)
	for attempt := 0; ; attempt++ {
		if err != nil {
			return nil, storageError(err, r.gr, name)
		}
		cur, err := r.decode(kv.Value, kv.Rev)
		if err != nil {
			return nil, err
		}
		next, err := fn(cur.DeepCopyObject())
		if errors.Is(err, errDeleteInstead) {
			return r.deleteNow(ctx, ns, name, kv.Rev, next)
		}
		if err != nil {
			return nil, err
		}
		data, err := r.encode(next)
		if err != nil {
			return nil, err
		}
		// A value read with an old encryption key is rewritten even when
		// unchanged: that is how `kubectl replace` rotates keys.
		if bytes.Equal(data, kv.Value) && !kv.Stale {
			return cur, nil
		}
		var rev int64
		var latest storage.KV
		if creates, releases, rerr := r.reservationChanges(next, cur); rerr != nil {
			return nil, rerr
		} else if len(creates)+len(releases) > 0 {
			var taken string
			rev, latest, taken, err = r.store.UpdateWith(ctx, key, data, kv.Rev, creates, releases)
			if errors.Is(err, storage.ErrExists) {
				return nil, reservationTaken(next, taken)
			}
		} else {
			rev, latest, err = r.store.Update(ctx, key, data, kv.Rev)
		}
		if err == nil {
			m, _ := meta.Accessor(next)
			m.SetResourceVersion(strconv.FormatInt(rev, 10))
			return next, nil
		}
		if !errors.Is(err, storage.ErrConflict) || attempt > 100 {
			return nil, storageError(err, r.gr, name)
		}
		kv, err = latest, nil
	}
}

// deleteNow removes the object if it is still at rev; last is returned to
// the client as the deleted object.
func (r *resource) deleteNow(ctx context.Context, ns, name string, rev int64, last runtime.Object) (runtime.Object, error) {
	_, _, err := r.store.DeleteWith(ctx, r.key(ns, name), rev, heldKeys(last))
	if err != nil {
		return nil, storageError(err, r.gr, name)
	}
	return last, nil
}

// newList returns an empty typed list with its kind set.
func (r *resource) newList(rv string, cont string, remaining *int64) runtime.Object {
	l := r.NewList()
	l.GetObjectKind().SetGroupVersionKind(r.GVR.GroupVersion().WithKind(r.listKind()))
	lm, _ := meta.ListAccessor(l)
	lm.SetResourceVersion(rv)
	lm.SetContinue(cont)
	lm.SetRemainingItemCount(remaining)
	return l
}

// fillList sets the typed Items of list from objs.
func fillList(list runtime.Object, objs []runtime.Object) {
	if ul, ok := list.(*unstructured.UnstructuredList); ok {
		ul.Items = make([]unstructured.Unstructured, len(objs))
		for i, o := range objs {
			ul.Items[i] = *o.(*unstructured.Unstructured)
		}
		return
	}
	items := reflect.ValueOf(list).Elem().FieldByName("Items")
	s := reflect.MakeSlice(items.Type(), len(objs), len(objs))
	for i, o := range objs {
		s.Index(i).Set(reflect.ValueOf(o).Elem())
	}
	items.Set(s)
}

// copyStatus sets dst's Status to src's.
func copyStatus(dst, src runtime.Object) {
	if d, ok := dst.(*unstructured.Unstructured); ok {
		setOrDelete(d.Object, "status", src.(*unstructured.Unstructured).Object)
		return
	}
	d := reflect.ValueOf(dst).Elem().FieldByName("Status")
	s := reflect.ValueOf(src).Elem().FieldByName("Status")
	if d.IsValid() && s.IsValid() {
		d.Set(s)
	}
}

// clearStatus zeroes obj's Status.
func clearStatus(obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		delete(u.Object, "status")
		return
	}
	f := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if f.IsValid() {
		f.Set(reflect.Zero(f.Type()))
	}
}

// copyAllButStatus copies every field of src except TypeMeta, ObjectMeta and
// Status into dst: an update of the status subresource keeps the rest.
func copyAllButStatus(dst, src runtime.Object) {
	if d, ok := dst.(*unstructured.Unstructured); ok {
		// As upstream's custom resource status strategy: everything but
		// status (and managedFields) stays as it was, metadata included.
		s := src.(*unstructured.Unstructured).DeepCopy()
		setOrDelete(s.Object, "status", d.Object)
		s.SetManagedFields(d.GetManagedFields())
		d.Object = s.Object
		return
	}
	d := reflect.ValueOf(dst).Elem()
	s := reflect.ValueOf(src).Elem()
	for i := 0; i < d.NumField(); i++ {
		switch d.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		d.Field(i).Set(s.Field(i))
	}
}

// specEqual reports whether everything but metadata and status is equal;
// generation counts changes of that part.
func specEqual(a, b runtime.Object) bool {
	av := reflect.ValueOf(a).Elem()
	bv := reflect.ValueOf(b).Elem()
	for i := 0; i < av.NumField(); i++ {
		switch av.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !equality.Semantic.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			return false
		}
	}
	return true
}

var _ = metav1.Now
