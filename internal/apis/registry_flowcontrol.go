package apis

import (
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// flowControlResources are API Priority and Fairness' configuration kinds
// (flowcontrol.apiserver.k8s.io/v1), with upstream's defaults and tables.
func flowControlResources() []*Resource {
	gv := flowcontrolv1.SchemeGroupVersion
	fs := def(gv, "flowschemas", "flowschema", "FlowSchema", false,
		func() runtime.Object { return &flowcontrolv1.FlowSchema{} },
		func() runtime.Object { return &flowcontrolv1.FlowSchemaList{} }).with("status")
	pl := def(gv, "prioritylevelconfigurations", "prioritylevelconfiguration", "PriorityLevelConfiguration", false,
		func() runtime.Object { return &flowcontrolv1.PriorityLevelConfiguration{} },
		func() runtime.Object { return &flowcontrolv1.PriorityLevelConfigurationList{} }).with("status")
	for _, r := range []*Resource{fs, pl} {
		attachBehaviour(r)
		r.Default = func(obj runtime.Object) { Default(obj); defaultFlowControl(obj) }
	}
	fs.TableColumns = []metav1.TableColumnDefinition{
		col("PriorityLevel", "string", flowcontrolv1.PriorityLevelConfigurationReference{}.SwaggerDoc()["name"], 0),
		col("MatchingPrecedence", "string", flowcontrolv1.FlowSchemaSpec{}.SwaggerDoc()["matchingPrecedence"], 0),
		col("DistinguisherMethod", "string", flowcontrolv1.FlowSchemaSpec{}.SwaggerDoc()["distinguisherMethod"], 0),
		ageCol,
		col("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration", 0),
	}
	fs.TableRow = func(o runtime.Object) []any {
		f := o.(*flowcontrolv1.FlowSchema)
		method := "<none>"
		if f.Spec.DistinguisherMethod != nil {
			method = string(f.Spec.DistinguisherMethod.Type)
		}
		missing := "?"
		for _, c := range f.Status.Conditions {
			if c.Type == flowcontrolv1.FlowSchemaConditionDangling {
				missing = string(c.Status)
				break
			}
		}
		return []any{f.Spec.PriorityLevelConfiguration.Name, int64(f.Spec.MatchingPrecedence), method, age(o), missing}
	}
	pl.TableColumns = []metav1.TableColumnDefinition{
		col("Type", "string", flowcontrolv1.PriorityLevelConfigurationSpec{}.SwaggerDoc()["type"], 0),
		col("NominalConcurrencyShares", "string", flowcontrolv1.LimitedPriorityLevelConfiguration{}.SwaggerDoc()["nominalConcurrencyShares"], 0),
		col("Queues", "string", flowcontrolv1.QueuingConfiguration{}.SwaggerDoc()["queues"], 0),
		col("HandSize", "string", flowcontrolv1.QueuingConfiguration{}.SwaggerDoc()["handSize"], 0),
		col("QueueLengthLimit", "string", flowcontrolv1.QueuingConfiguration{}.SwaggerDoc()["queueLengthLimit"], 0),
		ageCol,
	}
	pl.TableRow = func(o runtime.Object) []any {
		p := o.(*flowcontrolv1.PriorityLevelConfiguration)
		var shares, queues, hand, limit any = "<none>", "<none>", "<none>", "<none>"
		if l := p.Spec.Limited; l != nil {
			if l.NominalConcurrencyShares != nil {
				shares = int64(*l.NominalConcurrencyShares)
			}
			if q := l.LimitResponse.Queuing; q != nil {
				queues, hand, limit = int64(q.Queues), int64(q.HandSize), int64(q.QueueLengthLimit)
			}
		}
		return []any{string(p.Spec.Type), shares, queues, hand, limit, age(o)}
	}
	return []*Resource{fs, pl}
}

// defaultFlowControl applies upstream's defaults to the flowcontrol kinds.
func defaultFlowControl(obj runtime.Object) {
	switch o := obj.(type) {
	case *flowcontrolv1.FlowSchema:
		if o.Spec.MatchingPrecedence == 0 {
			o.Spec.MatchingPrecedence = 1000
		}
	case *flowcontrolv1.PriorityLevelConfiguration:
		if e := o.Spec.Exempt; e != nil {
			e.NominalConcurrencyShares = orDefault(e.NominalConcurrencyShares, 0)
			e.LendablePercent = orDefault(e.LendablePercent, 0)
		}
		if l := o.Spec.Limited; l != nil {
			l.NominalConcurrencyShares = orDefault(l.NominalConcurrencyShares, 30)
			l.LendablePercent = orDefault(l.LendablePercent, 0)
			if q := l.LimitResponse.Queuing; q != nil {
				if q.HandSize == 0 {
					q.HandSize = 8
				}
				if q.Queues == 0 {
					q.Queues = 64
				}
				if q.QueueLengthLimit == 0 {
					q.QueueLengthLimit = 50
				}
			}
		}
	}
}
