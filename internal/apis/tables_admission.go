package apis

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// setAdmissionTables gives the admissionregistration kinds upstream's
// printer columns (pkg/printers/internalversion).
func setAdmissionTables(mwc, vwc, vap, vapb, mAP, mapb *Resource) {
	webhooks := []metav1.TableColumnDefinition{
		col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration", 0), ageCol,
	}
	mwc.TableColumns = webhooks
	mwc.TableRow = func(o runtime.Object) []any {
		return []any{int64(len(o.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks)), age(o)}
	}
	vwc.TableColumns = webhooks
	vwc.TableRow = func(o runtime.Object) []any {
		return []any{int64(len(o.(*admissionregistrationv1.ValidatingWebhookConfiguration).Webhooks)), age(o)}
	}

	paramKindCol := col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy", 0)
	vap.TableColumns = []metav1.TableColumnDefinition{
		col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration", 0), paramKindCol, ageCol,
	}
	vap.TableRow = func(o runtime.Object) []any {
		p := o.(*admissionregistrationv1.ValidatingAdmissionPolicy)
		return []any{int64(len(p.Spec.Validations)), paramKindCell(p.Spec.ParamKind), age(o)}
	}
	mAP.TableColumns = []metav1.TableColumnDefinition{
		col("Mutations", "integer", "Mutation indicates the number of mutations rules defined in this configuration", 0), paramKindCol, ageCol,
	}
	mAP.TableRow = func(o runtime.Object) []any {
		p := o.(*admissionregistrationv1.MutatingAdmissionPolicy)
		return []any{int64(len(p.Spec.Mutations)), paramKindCell(p.Spec.ParamKind), age(o)}
	}

	bindings := []metav1.TableColumnDefinition{
		col("PolicyName", "string", "PolicyName indicates the policy definition which the policy binding binded to", 0),
		col("ParamRef", "string", "ParamRef indicates the param resource which sets the configuration param", 0),
		ageCol,
	}
	vapb.TableColumns = bindings
	vapb.TableRow = func(o runtime.Object) []any {
		b := o.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
		return []any{b.Spec.PolicyName, paramRefCell(b.Spec.ParamRef), age(o)}
	}
	mapb.TableColumns = bindings
	mapb.TableRow = func(o runtime.Object) []any {
		b := o.(*admissionregistrationv1.MutatingAdmissionPolicyBinding)
		return []any{b.Spec.PolicyName, paramRefCell(b.Spec.ParamRef), age(o)}
	}
}

func paramKindCell(pk *admissionregistrationv1.ParamKind) string {
	if pk == nil {
		return "<unset>"
	}
	return pk.APIVersion + "/" + pk.Kind
}

// paramRefCell names a binding's parameter: namespace/name ("*" when the
// namespace is unset, as the param may be cluster-scoped), or its selector.
func paramRefCell(pr *admissionregistrationv1.ParamRef) string {
	switch {
	case pr == nil:
		return "<unset>"
	case pr.Name != "" && pr.Namespace != "":
		return pr.Namespace + "/" + pr.Name
	case pr.Name != "":
		return "*/" + pr.Name
	case pr.Selector != nil:
		return pr.Selector.String()
	}
	return "<unset>"
}
