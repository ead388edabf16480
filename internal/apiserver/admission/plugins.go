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
}

// Default is the admission chain of a Skiff server. Mutators run after
// decoding and before the kind's defaulting and validation; validators run
// after them, before storage. The order follows upstream's default plugin
// order, for the plugins Skiff has. (Namespace lifecycle, pod priority and
// default tolerations are still inline in the create handler.)
func Default(d Deps) *Chain {
	return &Chain{
		Mutators: []Mutator{
			NewLimitRanger(d.LimitRanges),
			NewServiceAccount(d.ServiceAccounts),
			NewRuntimeClass(d.RuntimeClasses),
		},
		Validators: []Validator{
			NewLimitRanger(d.LimitRanges),
			NewNodeRestriction(d.Pod),
			NewRuntimeClass(d.RuntimeClasses),
			NewCertificateApproval(d.Authorizer),
			NewCertificateSigning(d.Authorizer),
			NewCertificateSubjectRestriction(),
			NewCertificateRequestRules(),
			// Last, as upstream: only writes every other plugin let through
			// count against a quota.
			NewResourceQuota(d.Quotas),
		},
	}
}
