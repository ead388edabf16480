package admission

import (
	"context"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

var clusterTrustBundlesResource = certificatesv1.Resource("clustertrustbundles")

// ClusterTrustBundleAttest is upstream's plugin of that name: writing a
// ClusterTrustBundle that names a signer needs the attest verb on that
// signer (by name or "<domain>/*"), unless the update touches only owner
// references and finalizers.
type ClusterTrustBundleAttest struct{ authz authz.Authorizer }

// NewClusterTrustBundleAttest returns the plugin asking az.
func NewClusterTrustBundleAttest(az authz.Authorizer) *ClusterTrustBundleAttest {
	return &ClusterTrustBundleAttest{authz: az}
}

// Name implements Validator.
func (*ClusterTrustBundleAttest) Name() string { return "ClusterTrustBundleAttest" }

// Validate implements Validator.
func (p *ClusterTrustBundleAttest) Validate(ctx context.Context, a *Attributes) error {
	if (a.Operation != Create && a.Operation != Update) || a.Resource.GroupResource() != clusterTrustBundlesResource {
		return nil
	}
	bundle, ok := a.Object.(*certificatesv1.ClusterTrustBundle)
	if !ok {
		return forbidden(a, fmt.Errorf("expected type ClusterTrustBundle, got: %T", a.Object))
	}
	if bundle.Spec.SignerName == "" {
		return nil
	}
	if a.Operation == Update && onlyGCFieldsDiffer(a.Object, a.OldObject) {
		return nil
	}
	if p.authz == nil || !authorizedForSigner(ctx, p.authz, a.User, "attest", bundle.Spec.SignerName) {
		return forbidden(a, fmt.Errorf("user not permitted to attest for signerName %q", bundle.Spec.SignerName))
	}
	return nil
}

// onlyGCFieldsDiffer reports whether obj differs from old at most in
// owner references and finalizers (and the bookkeeping fields the server
// sets), as upstream's check of the same purpose.
func onlyGCFieldsDiffer(obj, old runtime.Object) bool {
	if old == nil {
		return false
	}
	cp := obj.DeepCopyObject()
	cm, err := meta.Accessor(cp)
	if err != nil {
		return false
	}
	om, err := meta.Accessor(old)
	if err != nil {
		return false
	}
	cm.SetOwnerReferences(om.GetOwnerReferences())
	cm.SetFinalizers(om.GetFinalizers())
	cm.SetSelfLink(om.GetSelfLink())
	cm.SetManagedFields(om.GetManagedFields())
	cm.SetResourceVersion(om.GetResourceVersion())
	return equality.Semantic.DeepEqual(cp, old)
}
