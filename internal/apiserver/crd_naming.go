package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

// updateNames computes accepted names and the NamesAccepted and
// Established conditions, and writes them when they changed.
func (c *crdController) updateNames(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) (*apiextensionsv1.CustomResourceDefinition, error) {
	names, accepted, established := c.namesAndConditions(crd)
	if established.Status != apiextensionsv1.ConditionTrue && accepted.Status == apiextensionsv1.ConditionTrue {
		// Upstream's establishing controller follows at once when the
		// initial names are accepted.
		established = apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue,
			Reason: "InitialNamesAccepted", Message: "the initial names have been accepted",
		}
	}
	next := crd.DeepCopy()
	next.Status.AcceptedNames = names
	setCRDCondition(next, accepted)
	setCRDCondition(next, established)
	if equality.Semantic.DeepEqual(next.Status, crd.Status) {
		return crd, nil
	}
	return c.writeStatus(ctx, crd.Name, func(cur *apiextensionsv1.CustomResourceDefinition) {
		cur.Status.AcceptedNames = names
		setCRDCondition(cur, accepted)
		setCRDCondition(cur, established)
	})
}

// writeStatus applies mutate to the stored CRD; a deleting CRD left
// without finalizers is removed.
func (c *crdController) writeStatus(ctx context.Context, name string, mutate func(*apiextensionsv1.CustomResourceDefinition)) (*apiextensionsv1.CustomResourceDefinition, error) {
	out, err := c.crds.guaranteedUpdate(ctx, "", name, func(cur runtime.Object) (runtime.Object, error) {
		crd := cur.(*apiextensionsv1.CustomResourceDefinition)
		mutate(crd)
		if crd.DeletionTimestamp != nil && len(crd.Finalizers) == 0 {
			return crd, errDeleteInstead
		}
		return crd, nil
	})
	if err != nil {
		return nil, err
	}
	return out.(*apiextensionsv1.CustomResourceDefinition), nil
}

// namesAndConditions is upstream's naming controller: a name is taken when
// another CRD of the group (or a built-in resource) has accepted it;
// names already accepted for this CRD stay its own.
func (c *crdController) namesAndConditions(crd *apiextensionsv1.CustomResourceDefinition) (apiextensionsv1.CustomResourceDefinitionNames, apiextensionsv1.CustomResourceDefinitionCondition, apiextensionsv1.CustomResourceDefinitionCondition) {
	resources, kinds := c.namesInUse(crd)
	cond := apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionUnknown}
	conflict := func(reason string, err error) {
		cond.Status, cond.Reason, cond.Message = apiextensionsv1.ConditionFalse, reason, err.Error()
	}
	want, have := crd.Spec.Names, crd.Status.AcceptedNames
	names := have
	if err := freshOrOwn(want.Plural, have.Plural, resources); err != nil {
		conflict("PluralConflict", err)
	} else {
		names.Plural = want.Plural
	}
	if err := freshOrOwn(want.Singular, have.Singular, resources); err != nil {
		conflict("SingularConflict", err)
	} else {
		names.Singular = want.Singular
	}
	if !slices.Equal(want.ShortNames, have.ShortNames) {
		var errs []error
		for _, sn := range want.ShortNames {
			if slices.Contains(have.ShortNames, sn) {
				continue
			}
			if err := freshOrOwn(sn, "", resources); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			conflict("ShortNamesConflict", aggregateErrors(errs))
		} else {
			names.ShortNames = want.ShortNames
		}
	}
	if err := freshOrOwn(want.Kind, have.Kind, kinds); err != nil {
		conflict("KindConflict", err)
	} else {
		names.Kind = want.Kind
	}
	if err := freshOrOwn(want.ListKind, have.ListKind, kinds); err != nil {
		conflict("ListKindConflict", err)
	} else {
		names.ListKind = want.ListKind
	}
	names.Categories = want.Categories
	if cond.Status == apiextensionsv1.ConditionUnknown {
		cond.Status, cond.Reason, cond.Message = apiextensionsv1.ConditionTrue, "NoConflicts", "no conflicts found"
	}

	established := apiextensionsv1.CustomResourceDefinitionCondition{
		Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionFalse,
		Reason: "NotAccepted", Message: "not all names are accepted",
	}
	if old := findCRDCondition(crd, apiextensionsv1.Established); old != nil {
		established = *old
	}
	return names, cond, established
}

// aggregateErrors joins errors as upstream's utilerrors aggregate prints
// them: one plainly, several in brackets.
func aggregateErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msg := "["
	for i, e := range errs {
		if i > 0 {
			msg += ", "
		}
		msg += e.Error()
	}
	return errors.New(msg + "]")
}

func freshOrOwn(requested, accepted string, used map[string]bool) error {
	if requested == accepted || !used[requested] {
		return nil
	}
	return fmt.Errorf("%q is already in use", requested)
}

// namesInUse are the resource names (plural, singular, short) and kinds
// of the group held by other CRDs and by built-in resources.
func (c *crdController) namesInUse(crd *apiextensionsv1.CustomResourceDefinition) (resources, kinds map[string]bool) {
	resources, kinds = map[string]bool{}, map[string]bool{}
	add := func(n apiextensionsv1.CustomResourceDefinitionNames) {
		for _, r := range append([]string{n.Plural, n.Singular}, n.ShortNames...) {
			if r != "" {
				resources[r] = true
			}
		}
		for _, k := range []string{n.Kind, n.ListKind} {
			if k != "" {
				kinds[k] = true
			}
		}
	}
	others := map[string]apiextensionsv1.CustomResourceDefinition{}
	entries, _ := c.crds.cache.List(c.crds.prefix, nil)
	for _, e := range entries {
		o := e.Obj.(*apiextensionsv1.CustomResourceDefinition)
		others[o.Name] = *o
	}
	for name, o := range c.accepted {
		if _, ok := others[name]; ok {
			others[name] = o // our own last write is fresher
		}
	}
	for name, o := range others {
		if name != crd.Name && o.Spec.Group == crd.Spec.Group {
			add(o.Status.AcceptedNames)
		}
	}
	for gvr, r := range c.s.resources {
		if gvr.Group == crd.Spec.Group {
			add(apiextensionsv1.CustomResourceDefinitionNames{
				Plural: r.GVR.Resource, Singular: r.SingularName, ShortNames: r.ShortNames, Kind: r.Kind, ListKind: r.Kind + "List",
			})
		}
	}
	return resources, kinds
}

func findCRDCondition(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) *apiextensionsv1.CustomResourceDefinitionCondition {
	for i := range crd.Status.Conditions {
		if crd.Status.Conditions[i].Type == t {
			return &crd.Status.Conditions[i]
		}
	}
	return nil
}

func crdConditionTrue(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	c := findCRDCondition(crd, t)
	return c != nil && c.Status == apiextensionsv1.ConditionTrue
}

// setCRDCondition sets a condition, moving its transition time only when
// its status changes, as upstream's helper does.
func setCRDCondition(crd *apiextensionsv1.CustomResourceDefinition, cond apiextensionsv1.CustomResourceDefinitionCondition) {
	old := findCRDCondition(crd, cond.Type)
	if old == nil {
		cond.LastTransitionTime = nowTime()
		crd.Status.Conditions = append(crd.Status.Conditions, cond)
		return
	}
	if old.Status != cond.Status {
		old.Status = cond.Status
		old.LastTransitionTime = nowTime()
	}
	old.Reason, old.Message = cond.Reason, cond.Message
}
