package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync/atomic"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// Patch media types.
const (
	patchJSON      = "application/json-patch+json"
	patchMerge     = "application/merge-patch+json"
	patchStrategic = "application/strategic-merge-patch+json"
	patchApply     = "application/apply-patch+yaml"
)

// maxJSONPatchOps is upstream's limit on the operations of one JSON patch.
const maxJSONPatchOps = 10000

func init() {
	// Bound the bytes that a JSON patch's copy operations may add, as
	// upstream does with its request size limit: without it a few KB of
	// repeated copies of a growing document take gigabytes.
	for {
		cur := atomic.LoadInt64(&jsonpatch.AccumulatedCopySizeLimit)
		if cur > 0 && cur <= maxBodyBytes {
			return
		}
		if atomic.CompareAndSwapInt64(&jsonpatch.AccumulatedCopySizeLimit, cur, maxBodyBytes) {
			return
		}
	}
}

func (q *request) patch() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	ct, _, err := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	if err != nil {
		return unsupportedPatchType()
	}
	switch ct {
	case patchStrategic:
		if q.res.custom != nil {
			return customPatchTypeError()
		}
	case patchJSON, patchMerge:
	case patchApply:
		return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", q.res.gr, q.info.name,
			"server-side apply is not supported yet", 0, false)
	default:
		return unsupportedPatchType()
	}
	patch, err := q.body()
	if err != nil {
		return err
	}
	var jp jsonpatch.Patch
	if ct == patchJSON {
		if jp, err = jsonpatch.DecodePatch(patch); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
		if len(jp) > maxJSONPatchOps {
			return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf(
				"The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOps, len(jp)))
		}
	}
	out, err := q.applyUpdate(func(cur runtime.Object) (runtime.Object, error) {
		if q.info.subresource == "scale" {
			sc, err := toScale(q.res, cur)
			if err != nil {
				return nil, err
			}
			cur = sc
		}
		curJSON, err := q.encodeJSON(cur)
		if err != nil {
			return nil, err
		}
		var patched []byte
		switch ct {
		case patchJSON:
			patched, err = jp.Apply(curJSON)
		case patchMerge:
			patched, err = jsonpatch.MergePatch(curJSON, patch)
			if errors.Is(err, jsonpatch.ErrBadJSONPatch) {
				return nil, apierrors.NewBadRequest(err.Error())
			}
		case patchStrategic:
			patched, err = strategicpatch.StrategicMergePatch(curJSON, patch, q.newForSubresource())
		}
		if err != nil {
			// As upstream: 422 without naming the object.
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
		}
		obj, err := q.decodeWith(q.codecs.jsonStrict, patched)
		if err != nil {
			return nil, err
		}
		if q.info.subresource == "scale" {
			// updateScale expects the full object; hand back the scale.
			return obj, nil
		}
		return obj, nil
	})
	if err != nil {
		return err
	}
	q.respond(a, http.StatusOK, out)
	return nil
}
