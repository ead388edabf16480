package apis

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// admissionResources are the admissionregistration.k8s.io/v1 kinds:
// webhook configurations and the CEL admission policies with their
// bindings, all cluster-scoped and in the "api-extensions" category, as
// kube-apiserver v1.37 serves them by default.
func admissionResources() []*Resource {
	gv := admissionregistrationv1.SchemeGroupVersion
	mwc := def(gv, "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", false,
		func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
		func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfigurationList{} })
	vwc := def(gv, "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", false,
		func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
		func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfigurationList{} })
	vap := def(gv, "validatingadmissionpolicies", "validatingadmissionpolicy", "ValidatingAdmissionPolicy", false,
		func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicy{} },
		func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyList{} }).with("status")
	vapb := def(gv, "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", "ValidatingAdmissionPolicyBinding", false,
		func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{} },
		func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyBindingList{} })
	map_ := def(gv, "mutatingadmissionpolicies", "mutatingadmissionpolicy", "MutatingAdmissionPolicy", false,
		func() runtime.Object { return &admissionregistrationv1.MutatingAdmissionPolicy{} },
		func() runtime.Object { return &admissionregistrationv1.MutatingAdmissionPolicyList{} })
	mapb := def(gv, "mutatingadmissionpolicybindings", "mutatingadmissionpolicybinding", "MutatingAdmissionPolicyBinding", false,
		func() runtime.Object { return &admissionregistrationv1.MutatingAdmissionPolicyBinding{} },
		func() runtime.Object { return &admissionregistrationv1.MutatingAdmissionPolicyBindingList{} })

	rs := []*Resource{mwc, vwc, vap, vapb, map_, mapb}
	for _, r := range rs {
		attachBehaviour(r)
		r.Categories = []string{"api-extensions"}
		r.Default = defaultAdmission
		r.Validate = validateAdmission
		r.ValidateUpdate = validateAdmissionUpdate
	}
	setAdmissionTables(mwc, vwc, vap, vapb, map_, mapb)
	return rs
}

// validateAdmission dispatches a new admissionregistration object to its rules.
func validateAdmission(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return validateMutatingWebhookConfiguration(o, strictWebhookOptions())
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return validateValidatingWebhookConfiguration(o, strictWebhookOptions())
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return validateValidatingAdmissionPolicy(o, admissionOptions{})
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return validateValidatingAdmissionPolicyBinding(o)
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		return validateMutatingAdmissionPolicy(o, admissionOptions{})
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		return validateMutatingAdmissionPolicyBinding(o)
	}
	return nil
}

// validateAdmissionUpdate is validateAdmission for updates: rules that
// were tightened over time are only enforced when the stored object
// already met them, as upstream ratchets them.
func validateAdmissionUpdate(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return validateMutatingWebhookConfigurationUpdate(o, old.(*admissionregistrationv1.MutatingWebhookConfiguration))
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return validateValidatingWebhookConfigurationUpdate(o, old.(*admissionregistrationv1.ValidatingWebhookConfiguration))
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return validateValidatingAdmissionPolicyUpdate(o, old.(*admissionregistrationv1.ValidatingAdmissionPolicy))
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return validateValidatingAdmissionPolicyBinding(o)
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		return validateMutatingAdmissionPolicyUpdate(o, old.(*admissionregistrationv1.MutatingAdmissionPolicy))
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		return validateMutatingAdmissionPolicyBinding(o)
	}
	return nil
}

// defaultAdmission applies upstream's SetDefaults_* for the
// admissionregistration.k8s.io/v1 kinds.
func defaultAdmission(obj runtime.Object) {
	Default(obj)
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range o.Webhooks {
			w := &o.Webhooks[i]
			w.FailurePolicy = orDefault(w.FailurePolicy, admissionregistrationv1.Fail)
			w.MatchPolicy = orDefault(w.MatchPolicy, admissionregistrationv1.Equivalent)
			w.NamespaceSelector = orDefault(w.NamespaceSelector, metav1.LabelSelector{})
			w.ObjectSelector = orDefault(w.ObjectSelector, metav1.LabelSelector{})
			w.TimeoutSeconds = orDefault(w.TimeoutSeconds, 10)
			w.ReinvocationPolicy = orDefault(w.ReinvocationPolicy, admissionregistrationv1.NeverReinvocationPolicy)
			defaultWebhookClientConfig(&w.ClientConfig)
			defaultRules(w.Rules)
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range o.Webhooks {
			w := &o.Webhooks[i]
			w.FailurePolicy = orDefault(w.FailurePolicy, admissionregistrationv1.Fail)
			w.MatchPolicy = orDefault(w.MatchPolicy, admissionregistrationv1.Equivalent)
			w.NamespaceSelector = orDefault(w.NamespaceSelector, metav1.LabelSelector{})
			w.ObjectSelector = orDefault(w.ObjectSelector, metav1.LabelSelector{})
			w.TimeoutSeconds = orDefault(w.TimeoutSeconds, 10)
			defaultWebhookClientConfig(&w.ClientConfig)
			defaultRules(w.Rules)
		}
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		o.Spec.FailurePolicy = orDefault(o.Spec.FailurePolicy, admissionregistrationv1.Fail)
		defaultMatchResources(o.Spec.MatchConstraints)
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		defaultMatchResources(o.Spec.MatchResources)
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		o.Spec.FailurePolicy = orDefault(o.Spec.FailurePolicy, admissionregistrationv1.Fail)
		defaultMatchResources(o.Spec.MatchConstraints)
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		defaultMatchResources(o.Spec.MatchResources)
	}
}

func defaultWebhookClientConfig(cc *admissionregistrationv1.WebhookClientConfig) {
	if cc.Service != nil {
		cc.Service.Port = orDefault(cc.Service.Port, 443)
	}
}

func defaultRules(rules []admissionregistrationv1.RuleWithOperations) {
	for i := range rules {
		rules[i].Scope = orDefault(rules[i].Scope, admissionregistrationv1.AllScopes)
	}
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m == nil {
		return
	}
	m.MatchPolicy = orDefault(m.MatchPolicy, admissionregistrationv1.Equivalent)
	m.NamespaceSelector = orDefault(m.NamespaceSelector, metav1.LabelSelector{})
	m.ObjectSelector = orDefault(m.ObjectSelector, metav1.LabelSelector{})
	for _, rules := range [][]admissionregistrationv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range rules {
			rules[i].Scope = orDefault(rules[i].Scope, admissionregistrationv1.AllScopes)
		}
	}
}
