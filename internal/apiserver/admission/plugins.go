package admission

import "github.com/skiff-dev/skiff/internal/apiserver/authz"

// Deps are what the built-in plugins read: the server's authorizer and its
// watch caches.
type Deps struct {
	Authorizer      authz.Authorizer
	ServiceAccounts ServiceAccountLookup
	Pod             PodGetter
	LimitRanges     LimitRangeLookup
	Quotas          QuotaLookup
	RuntimeClasses  RuntimeClassLookup
	Namespaces      NamespaceLookup
	Pods            PodLister
	IngressClasses  IngressClassLister
	StorageClasses  StorageClassLister
	// Policies and Webhooks are the admission policy (CEL) and webhook
	// plugins, built by the server from their own packages (which import
	// this one); nil leaves them out.
	PolicyMutator    Mutator
	WebhookMutator   Mutator
	PolicyValidator  Validator
	WebhookValidator Validator
}

// Default is the admission chain of a Skiff server. Mutators run after
// decoding and before the kind's defaulting and validation; validators run
// after them, before storage. The order follows upstream's default plugin
// order, for the plugins Skiff has. (Namespace lifecycle, pod priority and
// default tolerations are still inline in the create handler.)
// TaintNodesByCondition relies on the node lifecycle controller to remove
// the not-ready NoSchedule taint once the node reports ready.
func Default(d Deps) *Chain {
	c := &Chain{
		Mutators: []Mutator{
			NewLimitRanger(d.LimitRanges),
			NewServiceAccount(d.ServiceAccounts),
			NewTaintNodesByCondition(),
			NewDefaultStorageClass(d.StorageClasses),
			NewStorageObjectInUseProtection(),
			NewRuntimeClass(d.RuntimeClasses),
			NewDefaultIngressClass(d.IngressClasses),
		},
		Validators: []Validator{
			NewLimitRanger(d.LimitRanges),
			NewNodeRestriction(d.Pod),
			NewPodSecurity(d.Namespaces, d.Pods),
			NewPersistentVolumeClaimResize(d.StorageClasses),
			NewRuntimeClass(d.RuntimeClasses),
			NewCertificateApproval(d.Authorizer),
			NewCertificateSigning(d.Authorizer),
			NewClusterTrustBundleAttest(d.Authorizer),
			NewCertificateSubjectRestriction(),
			NewCertificateRequestRules(),
		},
	}
	// Then, as upstream: policies before webhooks, mutating last of the
	// mutators; the validating ones after every built-in validator.
	for _, m := range []Mutator{d.PolicyMutator, d.WebhookMutator} {
		if m != nil {
			c.Mutators = append(c.Mutators, m)
		}
	}
	for _, v := range []Validator{d.PolicyValidator, d.WebhookValidator} {
		if v != nil {
			c.Validators = append(c.Validators, v)
		}
	}
	// Last, as upstream: only writes every other plugin let through count
	// against a quota.
	c.Validators = append(c.Validators, NewResourceQuota(d.Quotas))
	return c
}
