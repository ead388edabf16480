package apis

import (
	"fmt"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Length limits of event fields, as upstream.
const (
	maxEventReportingInstance = 128
	maxEventAction            = 128
	maxEventReason            = 128
	maxEventNote              = 1024
)

// eventFields are the fields both Event APIs share, by the names of the
// core type, which upstream's error paths use for either API.
type eventFields struct {
	namespace, involvedNamespace           string
	eventTime                              metav1.MicroTime
	reportingController, reportingInstance string
	action, reason, message                string
}

// validateEventCommon applies the rules both APIs share; controllerField
// is the name the request's API gives the reporting controller.
func validateEventCommon(e eventFields, controllerField string) field.ErrorList {
	var errs field.ErrorList
	nsPath := field.NewPath("involvedObject", "namespace")
	mismatch := field.Invalid(nsPath, e.involvedNamespace, "does not match event.namespace")
	if e.eventTime.IsZero() {
		switch {
		case e.involvedNamespace == "" && e.namespace != metav1.NamespaceNone && e.namespace != metav1.NamespaceDefault:
			errs = append(errs, mismatch)
		case e.involvedNamespace != "" && e.namespace != e.involvedNamespace:
			errs = append(errs, mismatch)
		}
		return errs
	}
	if e.involvedNamespace == "" && e.namespace != metav1.NamespaceDefault && e.namespace != metav1.NamespaceSystem {
		errs = append(errs, mismatch)
	}
	cp := field.NewPath(controllerField)
	if e.reportingController == "" {
		errs = append(errs, field.Required(cp, ""))
	}
	errs = append(errs, invalidMsgs(cp, e.reportingController, validation.IsQualifiedName(e.reportingController))...)
	for _, f := range [...]struct {
		name, v  string
		max      int
		required bool
	}{
		{"reportingInstance", e.reportingInstance, maxEventReportingInstance, true},
		{"action", e.action, maxEventAction, true},
		{"reason", e.reason, maxEventReason, true},
		{"message", e.message, maxEventNote, false},
	} {
		if f.required && f.v == "" {
			errs = append(errs, field.Required(field.NewPath(f.name), ""))
		}
		if len(f.v) > f.max {
			errs = append(errs, field.Invalid(field.NewPath(f.name), "", fmt.Sprintf("can have at most %v characters", f.max)))
		}
	}
	return errs
}

func validateCoreEvent(e *corev1.Event) field.ErrorList {
	return validateEventCommon(eventFields{
		namespace: e.Namespace, involvedNamespace: e.InvolvedObject.Namespace, eventTime: e.EventTime,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		action: e.Action, reason: e.Reason, message: e.Message,
	}, "reportingComponent")
}

// validateEventsV1 checks an events.k8s.io Event: the shared rules, then
// those of the newer API (a series, an event time, no legacy fields).
func validateEventsV1(e *eventsv1.Event) field.ErrorList {
	errs := validateEventCommon(eventFields{
		namespace: e.Namespace, involvedNamespace: e.Regarding.Namespace, eventTime: e.EventTime,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		action: e.Action, reason: e.Reason, message: e.Note,
	}, "reportingController")
	if s := e.Series; s != nil {
		if s.Count < 2 {
			errs = append(errs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
		}
		if s.LastObservedTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("series.lastObservedTime"), ""))
		}
	}
	if e.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", "has invalid value: "+e.Type))
	}
	if !e.DeprecatedFirstTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("firstTimestamp"), "", "needs to be unset"))
	}
	if !e.DeprecatedLastTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("lastTimestamp"), "", "needs to be unset"))
	}
	if e.DeprecatedCount != 0 {
		errs = append(errs, field.Invalid(field.NewPath("count"), "", "needs to be unset"))
	}
	if e.DeprecatedSource.Component != "" || e.DeprecatedSource.Host != "" {
		errs = append(errs, field.Invalid(field.NewPath("source"), "", "needs to be unset"))
	}
	return errs
}

// leaseStrategies are the coordinated leader election strategies upstream
// knows by their short names.
var leaseStrategies = []coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	p := field.NewPath("spec")
	s := &l.Spec
	var errs field.ErrorList
	if d := s.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), d, "must be greater than 0"))
	}
	if t := s.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(p.Child("leaseTransitions"), t, "must be greater than or equal to 0"))
	}
	if st := s.Strategy; st != nil {
		sp := p.Child("strategy").Child("strategy") // upstream nests the name twice
		if strings.Contains(string(*st), "/") {
			errs = append(errs, invalidMsgs(sp, string(*st), validation.IsQualifiedName(string(*st)))...)
		} else if !slices.Contains(leaseStrategies, *st) {
			errs = append(errs, field.NotSupported(sp, *st, leaseStrategies))
		}
	}
	if h := s.PreferredHolder; h != nil && *h != "" && (s.Strategy == nil || *s.Strategy == "") {
		errs = append(errs, field.Forbidden(p.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

// validateEventsV1Update: an events.k8s.io Event may only change its
// series (and metadata); upstream names the fields as the core type does.
func validateEventsV1Update(e, old *eventsv1.Event) field.ErrorList {
	errs := validateEventCommon(eventFields{
		namespace: e.Namespace, involvedNamespace: e.Regarding.Namespace, eventTime: e.EventTime,
		reportingController: e.ReportingController, reportingInstance: e.ReportingInstance,
		action: e.Action, reason: e.Reason, message: e.Note,
	}, "reportingController")
	if !equality.Semantic.DeepEqual(e.Series, old.Series) && e.Series != nil {
		if e.Series.Count < 2 {
			errs = append(errs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
		}
		if e.Series.LastObservedTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("series.lastObservedTime"), ""))
		}
	}
	for _, f := range [...]struct {
		name   string
		v, old any
	}{
		{"involvedObject", e.Regarding, old.Regarding},
		{"reason", e.Reason, old.Reason},
		{"message", e.Note, old.Note},
		{"source", e.DeprecatedSource, old.DeprecatedSource},
		{"firstTimestamp", e.DeprecatedFirstTimestamp, old.DeprecatedFirstTimestamp},
		{"lastTimestamp", e.DeprecatedLastTimestamp, old.DeprecatedLastTimestamp},
		{"count", e.DeprecatedCount, old.DeprecatedCount},
		{"reason", e.Reason, old.Reason}, // upstream checks it twice
		{"type", e.Type, old.Type},
	} {
		errs = append(errs, immutable(f.v, f.old, field.NewPath(f.name))...)
	}
	if !e.EventTime.Truncate(time.Microsecond).UTC().Equal(old.EventTime.Truncate(time.Microsecond).UTC()) {
		errs = append(errs, immutable(e.EventTime, old.EventTime, field.NewPath("eventTime"))...)
	}
	errs = append(errs, immutable(e.Action, old.Action, field.NewPath("action"))...)
	errs = append(errs, immutable(e.Related, old.Related, field.NewPath("related"))...)
	errs = append(errs, immutable(e.ReportingController, old.ReportingController, field.NewPath("reportingController"))...)
	return append(errs, immutable(e.ReportingInstance, old.ReportingInstance, field.NewPath("reportingInstance"))...)
}
