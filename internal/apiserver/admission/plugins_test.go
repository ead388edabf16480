package admission

import (
	"reflect"
	"testing"
)

// TestDefaultOrder pins the chain to upstream's default plugin order, for
// the plugins Skiff has (CertificateRequestRules is Skiff's own).
func TestDefaultOrder(t *testing.T) {
	c := Default(Deps{})
	var mutators, validators []string
	for _, m := range c.Mutators {
		mutators = append(mutators, m.Name())
	}
	for _, v := range c.Validators {
		validators = append(validators, v.Name())
	}
	wantMutators := []string{"LimitRanger", "ServiceAccount", "TaintNodesByCondition", "DefaultStorageClass", "StorageObjectInUseProtection",
		"RuntimeClass", "DefaultIngressClass"}
	wantValidators := []string{"LimitRanger", "NodeRestriction", "PodSecurity", "PersistentVolumeClaimResize", "RuntimeClass",
		"CertificateApproval", "CertificateSigning", "ClusterTrustBundleAttest", "CertificateSubjectRestriction",
		"CertificateRequestRules", "ResourceQuota"}
	if !reflect.DeepEqual(mutators, wantMutators) {
		t.Errorf("mutators %v, want %v", mutators, wantMutators)
	}
	if !reflect.DeepEqual(validators, wantValidators) {
		t.Errorf("validators %v, want %v", validators, wantValidators)
	}
}
