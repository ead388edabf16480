package apis

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apis/celcheck"
)

var (
	deviceAllocationModes = []string{string(resourcev1.DeviceAllocationModeAll), string(resourcev1.DeviceAllocationModeExactCount)}
	deviceTolerationOps   = []string{string(resourcev1.DeviceTolerationOpEqual), string(resourcev1.DeviceTolerationOpExists)}
	deviceTaintEffects    = []string{string(resourcev1.DeviceTaintEffectNoExecute), string(resourcev1.DeviceTaintEffectNoSchedule), string(resourcev1.DeviceTaintEffectNone)}
)

func invalidMsgs(p *field.Path, v string, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range msgs {
		errs = append(errs, field.Invalid(p, v, m))
	}
	return errs
}

// validateDRADriverName: a lower-case DNS subdomain of at most 63 characters.
func validateDRADriverName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	if len(name) > 63 {
		errs = append(errs, field.TooLong(p, "", 63))
	}
	return append(errs, invalidMsgs(p, name, validation.IsDNS1123Subdomain(strings.ToLower(name)))...)
}

func validateDeviceClaim(c *resourcev1.DeviceClaim, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(c.Requests) > resourcev1.DeviceRequestsMaxSize {
		errs = append(errs, field.TooMany(p.Child("requests"), len(c.Requests), resourcev1.DeviceRequestsMaxSize))
	}
	names := sets.New[string]()
	for i := range c.Requests {
		r := &c.Requests[i]
		rp := p.Child("requests").Index(i)
		errs = append(errs, invalidMsgs(rp.Child("name"), r.Name, validation.IsDNS1123Label(r.Name))...)
		if names.Has(r.Name) {
			errs = append(errs, field.Duplicate(rp, r.Name))
		}
		names.Insert(r.Name)
		const one = "exactly one of `exactly` or `firstAvailable` is required"
		switch {
		case r.Exactly == nil && len(r.FirstAvailable) == 0:
			errs = append(errs, field.Required(rp, one))
		case r.Exactly != nil && len(r.FirstAvailable) > 0:
			errs = append(errs, field.Invalid(rp, nil, one+", but multiple fields are set"))
		case r.Exactly != nil:
			e := r.Exactly
			errs = append(errs, validateDeviceRequestParts(e.DeviceClassName, e.Selectors, e.AllocationMode, e.Count, e.Tolerations, rp.Child("exactly"))...)
		default:
			subs := sets.New[string]()
			for j := range r.FirstAvailable {
				s := &r.FirstAvailable[j]
				sp := rp.Child("firstAvailable").Index(j)
				errs = append(errs, invalidMsgs(sp.Child("name"), s.Name, validation.IsDNS1123Label(s.Name))...)
				if subs.Has(s.Name) {
					errs = append(errs, field.Duplicate(sp, s.Name))
				}
				subs.Insert(s.Name)
				errs = append(errs, validateDeviceRequestParts(s.DeviceClassName, s.Selectors, s.AllocationMode, s.Count, s.Tolerations, sp)...)
			}
		}
	}
	for i := range c.Config {
		errs = append(errs, validateDeviceConfig(&c.Config[i].DeviceConfiguration, p.Child("config").Index(i))...)
	}
	return errs
}

func validateDeviceRequestParts(class string, sels []resourcev1.DeviceSelector, mode resourcev1.DeviceAllocationMode, count int64,
	tols []resourcev1.DeviceToleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if class == "" {
		errs = append(errs, field.Required(p.Child("deviceClassName"), ""))
	} else {
		errs = append(errs, invalidMsgs(p.Child("deviceClassName"), class, validation.IsDNS1123Subdomain(class))...)
	}
	errs = append(errs, validateDeviceSelectors(sels, p.Child("selectors"))...)
	switch mode {
	case resourcev1.DeviceAllocationModeAll:
		if count != 0 {
			errs = append(errs, field.Invalid(p.Child("count"), count, fmt.Sprintf("must not be specified when allocationMode is '%s'", mode)))
		}
	case resourcev1.DeviceAllocationModeExactCount:
		if count <= 0 {
			errs = append(errs, field.Invalid(p.Child("count"), count, "must be greater than zero"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("allocationMode"), mode, deviceAllocationModes))
	}
	for i, t := range tols {
		tp := p.Child("tolerations").Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, tp.Child("key"))...)
		}
		switch t.Operator {
		case resourcev1.DeviceTolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("value"), t.Value, "must be empty for operator `Exists`"))
			}
		case resourcev1.DeviceTolerationOpEqual:
			errs = append(errs, invalidMsgs(tp.Child("value"), t.Value, validation.IsValidLabelValue(t.Value))...)
		case "":
			errs = append(errs, field.Required(tp.Child("operator"), ""))
		default:
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator, deviceTolerationOps))
		}
		if t.Effect != "" && !sets.New(deviceTaintEffects...).Has(string(t.Effect)) {
			errs = append(errs, field.NotSupported(tp.Child("effect"), t.Effect, deviceTaintEffects))
		}
	}
	return errs
}

// validateDeviceSelectors checks that each selector has a CEL expression of
// bounded length that compiles.
func validateDeviceSelectors(sels []resourcev1.DeviceSelector, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(sels) > resourcev1.DeviceSelectorsMaxSize {
		errs = append(errs, field.TooMany(p, len(sels), resourcev1.DeviceSelectorsMaxSize))
	}
	for i, s := range sels {
		switch {
		case s.CEL == nil:
			errs = append(errs, field.Required(p.Index(i).Child("cel"), ""))
		case len(s.CEL.Expression) > resourcev1.CELSelectorExpressionMaxLength:
			errs = append(errs, field.TooLong(p.Index(i).Child("cel", "expression"), "", resourcev1.CELSelectorExpressionMaxLength))
		default:
			if why := celcheck.DeviceSelector(s.CEL.Expression); why != "" {
				errs = append(errs, field.Invalid(p.Index(i).Child("cel", "expression"), s.CEL.Expression, why))
			}
		}
	}
	return errs
}

func validateDeviceConfig(c *resourcev1.DeviceConfiguration, p *field.Path) field.ErrorList {
	if c.Opaque == nil {
		return field.ErrorList{field.Required(p.Child("opaque"), "")}
	}
	errs := validateDRADriverName(c.Opaque.Driver, p.Child("opaque", "driver"))
	if len(c.Opaque.Parameters.Raw) == 0 {
		errs = append(errs, field.Required(p.Child("opaque", "parameters"), ""))
	}
	return errs
}

func validateDeviceTaint(t *resourcev1.DeviceTaint, p *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabelName(t.Key, p.Child("key"))
	if t.Value != "" {
		errs = append(errs, invalidMsgs(p.Child("value"), t.Value, validation.IsValidLabelValue(t.Value))...)
	}
	switch {
	case t.Effect == "":
		errs = append(errs, field.Required(p.Child("effect"), ""))
	case !sets.New(deviceTaintEffects...).Has(string(t.Effect)):
		errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, deviceTaintEffects))
	}
	return errs
}

func validateResourceSlice(s *resourcev1.ResourceSlice) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validateDRADriverName(s.Spec.Driver, spec.Child("driver"))
	pool := spec.Child("pool")
	if s.Spec.Pool.Name == "" {
		errs = append(errs, field.Required(pool.Child("name"), ""))
	} else {
		errs = append(errs, validatePoolName(s.Spec.Pool.Name, pool.Child("name"))...)
	}
	if s.Spec.Pool.ResourceSliceCount <= 0 {
		errs = append(errs, field.Invalid(pool.Child("resourceSliceCount"), s.Spec.Pool.ResourceSliceCount, "must be greater than zero"))
	}
	if s.Spec.Pool.Generation < 0 {
		errs = append(errs, field.Invalid(pool.Child("generation"), s.Spec.Pool.Generation, "must be greater than or equal to zero"))
	}
	var set []string
	if n := s.Spec.NodeName; n != nil {
		if *n == "" {
			errs = append(errs, field.Invalid(spec.Child("nodeName"), *n, "must be either unset or set to a non-empty string"))
		} else {
			set = append(set, "`nodeName`")
			errs = append(errs, invalidMsgs(spec.Child("nodeName"), *n, validation.IsDNS1123Subdomain(*n))...)
		}
	}
	if sel := s.Spec.NodeSelector; sel != nil {
		set = append(set, "`nodeSelector`")
		if len(sel.NodeSelectorTerms) != 1 {
			errs = append(errs, field.Invalid(spec.Child("nodeSelector", "nodeSelectorTerms"), sel.NodeSelectorTerms, "must have exactly one node selector term"))
		}
	}
	for _, b := range []struct {
		v    *bool
		name string
	}{{s.Spec.AllNodes, "allNodes"}, {s.Spec.PerDeviceNodeSelection, "perDeviceNodeSelection"}} {
		if b.v == nil {
			continue
		}
		if *b.v {
			set = append(set, "`"+b.name+"`")
		} else {
			errs = append(errs, field.Invalid(spec.Child(b.name), *b.v, "must be either unset or set to true"))
		}
	}
	const one = "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required"
	switch len(set) {
	case 0:
		errs = append(errs, field.Required(spec, one))
	case 1:
	default:
		errs = append(errs, field.Invalid(spec, fmt.Sprintf("{%s}", strings.Join(set, ", ")), one+", but multiple fields are set"))
	}
	if s.Spec.SharedCounters != nil && s.Spec.Devices != nil {
		errs = append(errs, field.Invalid(spec, "", "only one of `sharedCounters` or `devices` is allowed"))
	}
	if len(s.Spec.Devices) > resourcev1.ResourceSliceMaxDevicesWithAdvancedFeatures {
		errs = append(errs, field.TooMany(spec.Child("devices"), len(s.Spec.Devices), resourcev1.ResourceSliceMaxDevicesWithAdvancedFeatures))
	}
	names := sets.New[string]()
	for i := range s.Spec.Devices {
		d := &s.Spec.Devices[i]
		dp := spec.Child("devices").Index(i)
		errs = append(errs, invalidMsgs(dp.Child("name"), d.Name, validation.IsDNS1123Label(d.Name))...)
		if names.Has(d.Name) {
			errs = append(errs, field.Duplicate(dp, d.Name))
		}
		names.Insert(d.Name)
		for _, k := range slices.Sorted(maps.Keys(d.Attributes)) {
			errs = append(errs, invalidMsgs(dp.Child("attributes"), string(k), validation.IsQualifiedName(string(k)))...)
			errs = append(errs, validateDeviceAttribute(d.Attributes[k], dp.Child("attributes").Key(string(k)))...)
		}
		for j := range d.Taints {
			errs = append(errs, validateDeviceTaint(&d.Taints[j], dp.Child("taints").Index(j))...)
		}
	}
	return errs
}

func validateResourceMoreUpdate(obj, old any) field.ErrorList {
	switch o := obj.(type) {
	case *resourcev1.ResourceClaim:
		if !equality.Semantic.DeepEqual(o.Spec, old.(*resourcev1.ResourceClaim).Spec) {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), o.Spec, "field is immutable")}
		}
	case *resourcev1.ResourceClaimTemplate:
		if !equality.Semantic.DeepEqual(o.Spec, old.(*resourcev1.ResourceClaimTemplate).Spec) {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), o.Spec, "field is immutable")}
		}
	case *resourcev1.ResourceSlice:
		prev := old.(*resourcev1.ResourceSlice)
		spec := field.NewPath("spec")
		var errs field.ErrorList
		if o.Spec.Pool.Name != prev.Spec.Pool.Name {
			errs = append(errs, field.Invalid(spec.Child("pool", "name"), o.Spec.Pool.Name, "field is immutable"))
		}
		if o.Spec.Driver != prev.Spec.Driver {
			errs = append(errs, field.Invalid(spec.Child("driver"), o.Spec.Driver, "field is immutable"))
		}
		if !equality.Semantic.DeepEqual(o.Spec.NodeName, prev.Spec.NodeName) {
			errs = append(errs, field.Invalid(spec.Child("nodeName"), o.Spec.NodeName, "field is immutable"))
		}
		return errs
	}
	return nil
}

// validatePoolName: at most 253 characters of '/'-separated DNS subdomains.
func validatePoolName(name string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(name) > validation.DNS1123SubdomainMaxLength {
		errs = append(errs, field.TooLong(p, "", validation.DNS1123SubdomainMaxLength))
	}
	for _, part := range strings.Split(name, "/") {
		errs = append(errs, invalidMsgs(p, part, validation.IsDNS1123Subdomain(part))...)
	}
	return errs
}

// validateDeviceAttribute requires exactly one value; lists must not be
// empty.
func validateDeviceAttribute(a resourcev1.DeviceAttribute, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	for _, v := range [...]struct {
		set, list bool
		empty     bool
		name      string
		value     any
	}{
		{a.BoolValue != nil, false, false, "bool", nil},
		{a.IntValue != nil, false, false, "int", nil},
		{a.StringValue != nil, false, false, "string", nil},
		{a.VersionValue != nil, false, false, "version", nil},
		{a.BoolValues != nil, true, len(a.BoolValues) == 0, "bools", a.BoolValues},
		{a.IntValues != nil, true, len(a.IntValues) == 0, "ints", a.IntValues},
		{a.StringValues != nil, true, len(a.StringValues) == 0, "strings", a.StringValues},
		{a.VersionValues != nil, true, len(a.VersionValues) == 0, "versions", a.VersionValues},
	} {
		if !v.set {
			continue
		}
		n++
		if v.list && v.empty {
			errs = append(errs, field.Invalid(p.Child(v.name), v.value, "must not be empty if specified"))
		}
	}
	switch {
	case n == 0:
		// Upstream's declarative union rule words it this way.
		errs = append(errs, field.Invalid(p, "", "must specify one of: `int`, `bool`, `string`, `version`, `ints`, `bools`, `strings`, `versions`"))
	case n > 1:
		errs = append(errs, field.Invalid(p, a, "exactly one value must be specified"))
	}
	return errs
}

// validateDeviceTaintSelector checks the names a DeviceTaintRule selects
// devices by.
func validateDeviceTaintSelector(s *resourcev1.DeviceTaintSelector, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if s.Driver != nil {
		errs = append(errs, validateDRADriverName(*s.Driver, p.Child("driver"))...)
	}
	if s.Pool != nil {
		if *s.Pool == "" {
			errs = append(errs, field.Required(p.Child("pool"), ""))
		} else {
			errs = append(errs, validatePoolName(*s.Pool, p.Child("pool"))...)
		}
	}
	if s.Device != nil {
		errs = append(errs, dns1123Label(*s.Device, p.Child("device"))...)
	}
	return errs
}
