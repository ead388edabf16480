package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-dev/skiff/internal/storage"
)

// crdCleanupFinalizer holds a deleted CRD until its objects are gone.
const crdCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

func nowTime() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

// markCRDDeleting is what upstream's CRD registry does on the first DELETE
// of a CRD: add the cleanup finalizer and report Terminating.
func markCRDDeleting(crd *apiextensionsv1.CustomResourceDefinition) {
	if crd.DeletionTimestamp != nil {
		return
	}
	if !slices.Contains(crd.Finalizers, crdCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, crdCleanupFinalizer)
	}
	setCRDCondition(crd, apiextensionsv1.CustomResourceDefinitionCondition{
		Type: apiextensionsv1.Terminating, Status: apiextensionsv1.ConditionTrue, Reason: "InstanceDeletionPending",
		Message: "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
	})
}

// prepareCRDWrite keeps status.storedVersions listing the version marked
// for storage, as upstream's CRD strategy does on create and update (a CRD
// with none then fails validation for it).
func prepareCRDWrite(crd *apiextensionsv1.CustomResourceDefinition) {
	for _, v := range crd.Spec.Versions {
		if v.Storage && !slices.Contains(crd.Status.StoredVersions, v.Name) {
			crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
		}
	}
}

// finalize deletes the objects of a deleted CRD, then removes the cleanup
// finalizer, as upstream's finalizing controller does.
func (c *crdController) finalize(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	if !slices.Contains(crd.Finalizers, crdCleanupFinalizer) {
		return nil
	}
	remaining, err := c.deleteInstances(ctx, crd)
	if err != nil {
		return err
	}
	if remaining > 0 {
		_, err := c.writeStatus(ctx, crd.Name, func(cur *apiextensionsv1.CustomResourceDefinition) {
			setCRDCondition(cur, apiextensionsv1.CustomResourceDefinitionCondition{
				Type: apiextensionsv1.Terminating, Status: apiextensionsv1.ConditionTrue, Reason: "InstanceDeletionInProgress",
				Message: "CustomResource deletion is in progress",
			})
		})
		if err != nil {
			return err
		}
		return errRequeue
	}
	_, err = c.writeStatus(ctx, crd.Name, func(cur *apiextensionsv1.CustomResourceDefinition) {
		setCRDCondition(cur, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Terminating, Status: apiextensionsv1.ConditionFalse, Reason: "InstanceDeletionCompleted",
			Message: "removed all instances",
		})
		cur.Finalizers = slices.DeleteFunc(cur.Finalizers, func(f string) bool { return f == crdCleanupFinalizer })
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// storedObjectMeta is the part of a stored custom object cleanup reads.
type storedObjectMeta struct {
	Metadata struct {
		Finalizers        []string `json:"finalizers"`
		DeletionTimestamp *string  `json:"deletionTimestamp"`
	} `json:"metadata"`
}

// deleteInstances deletes every stored object of crd in every namespace:
// objects without finalizers at once, the others marked for deletion so
// that their controllers finish them. It returns how many remain.
func (c *crdController) deleteInstances(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (int, error) {
	prefix := "/registry/" + crd.Spec.Group + "/" + crd.Spec.Names.Plural + "/"
	st := c.s.cfg.Store
	remaining := 0
	start := prefix
	for {
		page, _, more, err := st.ListPage(ctx, prefix, start, 0, 500)
		if err != nil {
			return 0, fmt.Errorf("list objects of %s: %w", crd.Name, err)
		}
		for _, kv := range page {
			var m storedObjectMeta
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				return 0, fmt.Errorf("read %s: %w", kv.Key, err)
			}
			if len(m.Metadata.Finalizers) == 0 {
				if _, _, err := st.Delete(ctx, kv.Key, kv.Rev); err != nil && !errors.Is(err, storage.ErrNotFound) {
					if !errors.Is(err, storage.ErrConflict) {
						return 0, fmt.Errorf("delete %s: %w", kv.Key, err)
					}
					remaining++
				}
				continue
			}
			remaining++
			if m.Metadata.DeletionTimestamp == nil {
				if err := markStoredDeleted(ctx, st, kv); err != nil {
					return 0, err
				}
			}
		}
		if !more || len(page) == 0 {
			return remaining, nil
		}
		start = page[len(page)-1].Key + "\x00"
	}
}

// markStoredDeleted sets the deletion timestamp of a stored custom object.
func markStoredDeleted(ctx context.Context, st *storage.Store, kv storage.KV) error {
	var obj map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(kv.Value, &obj); err != nil {
		return fmt.Errorf("read %s: %w", kv.Key, err)
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		return nil
	}
	md["deletionTimestamp"] = nowTime().UTC().Format(time.RFC3339)
	md["deletionGracePeriodSeconds"] = int64(0)
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	if _, _, err := st.Update(ctx, kv.Key, data, kv.Rev); err != nil && !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("mark %s deleted: %w", kv.Key, err)
	}
	return nil
}
