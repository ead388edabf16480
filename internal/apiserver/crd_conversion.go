package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/webhook"
)

// conversionTimeout is upstream's fixed timeout of conversion webhooks.
const conversionTimeout = 30 * time.Second

// conversionReviewer converts custom objects by posting an
// apiextensions.k8s.io/v1 ConversionReview to the CRD's webhook.
type conversionReviewer struct {
	caller *webhook.Caller
}

// Convert implements CustomResourceConverter.
func (c conversionReviewer) Convert(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, objs []*unstructured.Unstructured, toAPIVersion string) ([]*unstructured.Unstructured, error) {
	conv := crd.Spec.Conversion
	if conv == nil || conv.Webhook == nil || conv.Webhook.ClientConfig == nil {
		return nil, errors.New("the CRD has no conversion webhook configured")
	}
	if !slices.Contains(conv.Webhook.ConversionReviewVersions, "v1") {
		return nil, fmt.Errorf("no supported conversion review versions in %v (this server sends v1)", conv.Webhook.ConversionReviewVersions)
	}
	req := &apiextensionsv1.ConversionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "ConversionReview"},
		Request:  &apiextensionsv1.ConversionRequest{UID: types.UID(uuid.NewUUID()), DesiredAPIVersion: toAPIVersion},
	}
	for _, o := range objs {
		raw, err := json.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		req.Request.Objects = append(req.Request.Objects, runtime.RawExtension{Raw: raw})
	}
	var resp apiextensionsv1.ConversionReview
	if err := c.caller.Post(ctx, clientConfigOf(conv.Webhook.ClientConfig), conversionTimeout, req, &resp); err != nil {
		return nil, err
	}
	r := resp.Response
	switch {
	case r == nil:
		return nil, errors.New("no response provided")
	case r.UID != req.Request.UID:
		return nil, fmt.Errorf("expected response.uid=%q, got %q", req.Request.UID, r.UID)
	case r.Result.Status != metav1.StatusSuccess:
		return nil, fmt.Errorf("conversion webhook failed: %s", r.Result.Message)
	case len(r.ConvertedObjects) != len(objs):
		return nil, fmt.Errorf("expected %d converted objects, got %d", len(objs), len(r.ConvertedObjects))
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i, raw := range r.ConvertedObjects {
		var m map[string]any
		if err := kjson.UnmarshalCaseSensitivePreserveInts(raw.Raw, &m); err != nil {
			return nil, fmt.Errorf("converted object %d: %w", i, err)
		}
		got := &unstructured.Unstructured{Object: m}
		if got.GetAPIVersion() != toAPIVersion {
			return nil, fmt.Errorf("converted object %d has apiVersion %q, want %q", i, got.GetAPIVersion(), toAPIVersion)
		}
		if got.GetKind() != objs[i].GetKind() {
			return nil, fmt.Errorf("converted object %d has kind %q, want %q", i, got.GetKind(), objs[i].GetKind())
		}
		// As upstream, a webhook may change labels and annotations only:
		// the rest of the metadata is the original's.
		md := runtime.DeepCopyJSONValue(objs[i].Object["metadata"])
		labels, annotations := got.GetLabels(), got.GetAnnotations()
		got.Object["metadata"] = md
		got.SetLabels(labels)
		got.SetAnnotations(annotations)
		out[i] = got
	}
	return out, nil
}

func clientConfigOf(cc *apiextensionsv1.WebhookClientConfig) webhook.ClientConfig {
	out := webhook.ClientConfig{URL: cc.URL, CABundle: cc.CABundle}
	if s := cc.Service; s != nil {
		out.Service = &webhook.ServiceReference{Namespace: s.Namespace, Name: s.Name, Path: s.Path, Port: s.Port}
	}
	return out
}
