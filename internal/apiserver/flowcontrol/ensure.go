package flowcontrol

import (
	"strconv"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

// Bootstrap is the default configuration with, for each object, whether
// it is mandatory (always kept as defined) or suggested (kept up to date
// unless a user set the autoupdate annotation to "false").
type Bootstrap struct {
	FlowSchemas    []Default[*flowcontrolv1.FlowSchema]
	PriorityLevels []Default[*flowcontrolv1.PriorityLevelConfiguration]
}

// Default is one object of the default configuration.
type Default[T any] struct {
	Object    T
	Mandatory bool
}

// DefaultBootstrap returns upstream's default configuration.
func DefaultBootstrap() Bootstrap {
	var b Bootstrap
	for _, pl := range apfdefaults.MandatoryPriorityLevels() {
		b.PriorityLevels = append(b.PriorityLevels, Default[*flowcontrolv1.PriorityLevelConfiguration]{pl, true})
	}
	for _, pl := range apfdefaults.SuggestedPriorityLevels() {
		b.PriorityLevels = append(b.PriorityLevels, Default[*flowcontrolv1.PriorityLevelConfiguration]{pl, false})
	}
	for _, fs := range apfdefaults.MandatoryFlowSchemas() {
		b.FlowSchemas = append(b.FlowSchemas, Default[*flowcontrolv1.FlowSchema]{fs, true})
	}
	for _, fs := range apfdefaults.SuggestedFlowSchemas() {
		b.FlowSchemas = append(b.FlowSchemas, Default[*flowcontrolv1.FlowSchema]{fs, false})
	}
	return b
}

// Names returns the names of the default objects, to tell which stored
// objects the server once created and no longer wants.
func (b Bootstrap) Names() (flowSchemas, priorityLevels map[string]bool) {
	flowSchemas, priorityLevels = map[string]bool{}, map[string]bool{}
	for _, d := range b.FlowSchemas {
		flowSchemas[d.Object.Name] = true
	}
	for _, d := range b.PriorityLevels {
		priorityLevels[d.Object.Name] = true
	}
	return flowSchemas, priorityLevels
}

// ShouldAutoUpdate says whether the server may rewrite the spec of a stored
// default object: always for mandatory ones; for suggested ones when the
// autoupdate annotation says true, or, when it is missing or not a
// boolean, while the object is still at its first generation.
func ShouldAutoUpdate(m metav1.Object, mandatory bool) bool {
	if mandatory {
		return true
	}
	if v, err := strconv.ParseBool(m.GetAnnotations()[flowcontrolv1.AutoUpdateAnnotationKey]); err == nil {
		return v
	}
	return m.GetGeneration() == 1
}

// IsUnwanted says whether a stored object that is not part of the default
// configuration was put there by a server (autoupdate annotation "true"),
// so that it is removed, as upstream removes defaults it dropped.
func IsUnwanted(m metav1.Object, defaultNames map[string]bool) bool {
	if defaultNames[m.GetName()] {
		return false
	}
	v, err := strconv.ParseBool(m.GetAnnotations()[flowcontrolv1.AutoUpdateAnnotationKey])
	return err == nil && v
}

// ReviseFlowSchema returns the stored schema cur brought up to date with
// the default want, or nil when nothing is to change. cur is not modified.
func ReviseFlowSchema(cur, want *flowcontrolv1.FlowSchema, mandatory bool) *flowcontrolv1.FlowSchema {
	if !ShouldAutoUpdate(cur, mandatory) {
		return nil
	}
	same := equality.Semantic.DeepEqual(cur.Spec, want.Spec)
	if same && hasAutoUpdateTrue(cur) {
		return nil
	}
	next := cur.DeepCopy()
	next.Spec = *want.Spec.DeepCopy()
	setAutoUpdateTrue(next)
	return next
}

// RevisePriorityLevel is ReviseFlowSchema for priority levels.
func RevisePriorityLevel(cur, want *flowcontrolv1.PriorityLevelConfiguration, mandatory bool) *flowcontrolv1.PriorityLevelConfiguration {
	if !ShouldAutoUpdate(cur, mandatory) {
		return nil
	}
	wantSpec := want.Spec
	if cur.Name == apfdefaults.Exempt && cur.Spec.Exempt != nil {
		// Administrators may tune the exempt level's shares, as upstream.
		wantSpec = *want.Spec.DeepCopy()
		wantSpec.Exempt = cur.Spec.Exempt.DeepCopy()
	}
	same := equality.Semantic.DeepEqual(cur.Spec, wantSpec)
	if same && hasAutoUpdateTrue(cur) {
		return nil
	}
	next := cur.DeepCopy()
	next.Spec = *wantSpec.DeepCopy()
	setAutoUpdateTrue(next)
	return next
}

func hasAutoUpdateTrue(m metav1.Object) bool {
	return m.GetAnnotations()[flowcontrolv1.AutoUpdateAnnotationKey] == "true"
}

func setAutoUpdateTrue(m metav1.Object) {
	a := m.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[flowcontrolv1.AutoUpdateAnnotationKey] = "true"
	m.SetAnnotations(a)
}
