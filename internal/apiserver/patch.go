package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/skiff-dev/skiff/internal/apiserver/fieldmanager"
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

// patchTypeOf is the media type of a PATCH body, "" when unreadable.
func patchTypeOf(r *http.Request) string {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return ct
}

func (q *request) patch() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	ct := patchTypeOf(q.r)
	switch ct {
	case patchStrategic:
		if q.res.custom != nil {
			return customPatchTypeError()
		}
	case patchJSON, patchMerge, patchApply:
	default:
		return unsupportedPatchType()
	}
	patch, err := q.body()
	if err != nil {
		return err
	}
	if ct == patchApply {
		return q.apply(a, patch)
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

// apply serves a server-side apply (application/apply-patch+yaml): the
// patch is merged into the current object by the field manager inside
// guaranteedUpdate, so a concurrent write retries the merge; when the object
// does not exist the merge result goes through the create path.
func (q *request) apply(a accept, patch []byte) error {
	if _, err := yaml.ToJSON(patch); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("error encoding patch: %v", err))
	}
	opts := &metav1.PatchOptions{}
	if err := decodeParams(q.r.URL.Query(), opts); err != nil {
		return err
	}
	force := opts.Force != nil && *opts.Force
	mgr, err := q.applyManager()
	if err != nil {
		return err
	}
	mergeInto := func(live runtime.Object) (runtime.Object, error) {
		out, err := mgr.Apply(live, patch, opts.FieldManager, force)
		if err != nil {
			return nil, bareServerError(err)
		}
		if err := q.checkApplyStrict(patch, opts.FieldValidation); err != nil {
			return nil, err
		}
		return out, nil
	}
	for attempt := 0; ; attempt++ {
		out, err := q.applyUpdate(func(cur runtime.Object) (runtime.Object, error) {
			if q.info.subresource == "scale" {
				sc, err := toScale(q.res, cur)
				if err != nil {
					return nil, err
				}
				cur = sc
			}
			return mergeInto(cur)
		})
		if err == nil {
			q.respond(a, http.StatusOK, out)
			return nil
		}
		if !q.isMissingObject(err) || q.info.subresource != "" {
			return err
		}
		obj, err := mergeInto(q.emptyForApply())
		if err != nil {
			return err
		}
		if err := q.checkAppliedIdentity(obj); err != nil {
			return err
		}
		created, err := q.createObject(obj, true)
		if apierrors.IsAlreadyExists(err) && attempt < 3 {
			continue // created meanwhile: apply to it
		}
		if err != nil {
			return err
		}
		q.respond(a, http.StatusCreated, created)
		return nil
	}
}

// applyManager is the field manager an apply to this endpoint merges with.
func (q *request) applyManager() (*fieldmanager.Manager, error) {
	if q.info.subresource == "scale" {
		return scaleManager()
	}
	return q.res.fieldManager(q.info.subresource)
}

// scaleManager merges applies to a scale subresource into its Scale view;
// the ownership of scale writes is not recorded on the object.
var scaleManager = sync.OnceValues(func() (*fieldmanager.Manager, error) {
	tc, err := fieldmanager.BuiltinTypeConverter()
	if err != nil {
		return nil, err
	}
	return fieldmanager.New(tc, scaleGVK, "scale"), nil
})

// checkApplyStrict applies fieldValidation to the apply configuration, after
// the merge, as upstream: duplicate fields are an error (Strict) or warnings
// (Warn, the default). Unknown fields already failed the merge.
func (q *request) checkApplyStrict(patch []byte, directive string) error {
	if directive == metav1.FieldValidationIgnore {
		return nil
	}
	err := yaml.UnmarshalStrict(patch, &map[string]any{})
	if err == nil {
		return nil
	}
	if directive == metav1.FieldValidationStrict {
		return apierrors.NewBadRequest(fmt.Sprintf("error strict decoding patch: %v", err))
	}
	for _, w := range yamlWarnings(err.Error()) {
		q.addWarning(w)
	}
	return nil
}

// yamlWarnings splits a YAML strict decoding error into one warning per
// problem, as upstream reports them.
func yamlWarnings(msg string) []string {
	for _, prefix := range []string{"yaml: unmarshal errors:\n", "error converting YAML to JSON: yaml: unmarshal errors:\n"} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			lines := strings.Split(rest, "\n")
			for i, l := range lines {
				lines[i] = strings.TrimSpace(l)
			}
			return lines
		}
	}
	return []string{msg}
}

// isMissingObject reports whether err is the 404 of the object addressed.
func (q *request) isMissingObject(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) || !apierrors.IsNotFound(err) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Name == q.info.name && d.Group == q.res.gr.Group && d.Kind == q.res.gr.Resource
}

// checkAppliedIdentity holds an object an apply would create to the URL, as
// upstream's patcher does.
func (q *request) checkAppliedIdentity(obj runtime.Object) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if uid := m.GetUID(); uid != "" {
		return apierrors.NewConflict(q.res.gr, q.info.name,
			fmt.Errorf("uid mismatch: the provided object specified uid %s, and no existing object was found", uid))
	}
	if q.res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != q.info.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	switch m.GetName() {
	case q.info.name:
		return nil
	case "":
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s based on URL) was undeterminable: name must be provided", q.info.name))
	}
	return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), q.info.name))
}
