package apiserver

import (
	"bufio"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/storage"
)

// protoMagic starts every Kubernetes protobuf body, ahead of the
// runtime.Unknown envelope (k8s.io/apimachinery's protobuf serializer).
var protoMagic = []byte{'k', '8', 's', 0}

// Protobuf wire tags (field<<3 | 2, length-delimited) of runtime.Unknown
// and of a k8s.io/api list message.
const (
	tagUnknownTypeMeta        = 0x0a
	tagUnknownRaw             = 0x12
	tagUnknownContentEncoding = 0x1a
	tagUnknownContentType     = 0x22
	tagListMeta               = 0x0a
	tagListItems              = 0x12
)

// protoItem is the gogo-generated encoding every k8s.io/api type has:
// its exact size, and an encoder into a buffer of that size.
type protoItem interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// streamableLists remembers, per list type, whether streamableProtoList.
var streamableLists sync.Map // reflect.Type -> bool

// streamableProtoList says whether list has the layout every k8s.io/api list
// has and writeProtobufList writes: TypeMeta (not encoded), ListMeta as
// field 1, Items as field 2 of messages with a protobuf encoding. Any other
// list keeps the generic encoder.
func streamableProtoList(list runtime.Object) bool {
	t := reflect.TypeOf(list)
	if ok, seen := streamableLists.Load(t); seen {
		return ok.(bool)
	}
	ok := false
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem().NumField() == 3 {
		s := t.Elem()
		tm, lm, items := s.Field(0), s.Field(1), s.Field(2)
		ok = tm.Type == reflect.TypeFor[metav1.TypeMeta]() && tm.Tag.Get("protobuf") == "" &&
			lm.Type == reflect.TypeFor[metav1.ListMeta]() && lm.Tag.Get("protobuf") == "bytes,1,opt,name=metadata" &&
			items.Type.Kind() == reflect.Slice && items.Tag.Get("protobuf") == "bytes,2,rep,name=items" &&
			reflect.PointerTo(items.Type.Elem()).Implements(reflect.TypeFor[protoItem]())
	}
	streamableLists.Store(t, ok)
	return ok
}

// writeProtobufList writes a protobuf list item by item, as writeJSONList
// does for JSON: the bytes equal what the protobuf serializer makes of the
// whole typed list, but no request builds that list or a buffer of its
// size. Items are encoded one at a time into one reused buffer rather than
// cached, so a LIST costs no memory per object beyond its own request
// (upstream streams its list encoding the same way).
func (q *request) writeProtobufList(entries []*storage.Entry, rev int64) error {
	listMeta, err := (&metav1.ListMeta{ResourceVersion: strconv.FormatInt(rev, 10)}).Marshal()
	if err != nil {
		return fmt.Errorf("encode list metadata: %w", err)
	}
	typeMeta, err := (&runtime.TypeMeta{APIVersion: q.res.GVR.GroupVersion().String(), Kind: q.res.listKind()}).Marshal()
	if err != nil {
		return fmt.Errorf("encode list type: %w", err)
	}
	// The envelope announces the list's length before its first byte. Sizes
	// are computed without encoding; cached objects never change, so each
	// item's encoding below has the size counted here.
	raw := fieldSize(len(listMeta))
	for _, e := range entries {
		m, ok := e.Obj.(protoItem)
		if !ok {
			return fmt.Errorf("encode %s list item %s: %T has no protobuf encoding", q.res.gr, e.Key, e.Obj)
		}
		raw += fieldSize(m.Size())
	}

	q.w.Header().Set("Content-Type", mediaProtobuf)
	q.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(q.w, 32<<10)
	bw.Write(protoMagic)
	writeField(bw, tagUnknownTypeMeta, typeMeta)
	writeTag(bw, tagUnknownRaw, raw)
	writeField(bw, tagListMeta, listMeta)
	var buf []byte
	for _, e := range entries {
		m := e.Obj.(protoItem)
		n := m.Size()
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := m.MarshalToSizedBuffer(buf[:n]); err != nil {
			// Too late for a Status: cut the response so that the client
			// sees an error rather than a short list.
			q.log.Error("encode list item", "resource", q.res.gr.String(), "key", e.Key, "err", err)
			panic(http.ErrAbortHandler)
		}
		if err := writeField(bw, tagListItems, buf[:n]); err != nil {
			return nil // the client went away
		}
	}
	// Empty contentEncoding and contentType, which the serializer writes.
	writeTag(bw, tagUnknownContentEncoding, 0)
	writeTag(bw, tagUnknownContentType, 0)
	_ = bw.Flush()
	return nil
}

// fieldSize is the encoded size of a length-delimited field of n bytes with
// a one-byte tag.
func fieldSize(n int) int {
	size := 2
	for v := uint64(n); v >= 0x80; v >>= 7 {
		size++
	}
	return size + n
}

// writeTag writes a one-byte tag and the varint length n.
func writeTag(bw *bufio.Writer, tag byte, n int) {
	bw.WriteByte(tag)
	v := uint64(n)
	for ; v >= 0x80; v >>= 7 {
		bw.WriteByte(byte(v) | 0x80)
	}
	bw.WriteByte(byte(v))
}

// writeField writes a length-delimited field; bufio keeps the first write
// error, which the last call returns.
func writeField(bw *bufio.Writer, tag byte, b []byte) error {
	writeTag(bw, tag, len(b))
	_, err := bw.Write(b)
	return err
}
