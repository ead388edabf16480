package apis

import (
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
)

// fieldSetFor returns the field-selector function of r: the kind-specific
// fields upstream's registry declares, beyond metadata.name (always) and
// metadata.namespace (namespaced kinds), which the API server adds. The keys
// returned for a zero object are the labels the kind accepts.
func fieldSetFor(r *Resource) func(runtime.Object) fields.Set {
	switch {
	case r.GVR.Group == "":
		return coreFieldSet
	case r.GVR.Group == "events.k8s.io" && r.Kind == "Event":
		return eventsFieldSet
	case r.GVR.Group == "batch" && r.Kind == "Job":
		return func(obj runtime.Object) fields.Set {
			return fields.Set{"status.successful": strconv.Itoa(int(obj.(*batchv1.Job).Status.Succeeded))}
		}
	case r.GVR.Group == "certificates.k8s.io" && r.Kind == "CertificateSigningRequest":
		return func(obj runtime.Object) fields.Set {
			return fields.Set{"spec.signerName": obj.(*certificatesv1.CertificateSigningRequest).Spec.SignerName}
		}
	case moreFieldSet(r.Kind) != nil:
		return moreFieldSet(r.Kind)
	case !r.Namespaced:
		return noNamespace
	}
	return nil
}

// noNamespace serves cluster-scoped kinds without a field-label conversion
// of their own: upstream's default conversion accepts metadata.namespace for
// them too, and it matches the empty namespace.
func noNamespace(runtime.Object) fields.Set { return fields.Set{"metadata.namespace": ""} }

// coreFieldSet returns the field-selector fields upstream supports for
// core/v1 kinds beyond metadata.name and metadata.namespace.
func coreFieldSet(obj runtime.Object) fields.Set {
	switch o := obj.(type) {
	case *corev1.Pod:
		podIP := o.Status.PodIP
		if len(o.Status.PodIPs) > 0 {
			podIP = o.Status.PodIPs[0].IP
		}
		return fields.Set{
			"spec.nodeName": o.Spec.NodeName,
			// spec.host is the old name of spec.nodeName, still accepted.
			"spec.host":               o.Spec.NodeName,
			"spec.restartPolicy":      string(o.Spec.RestartPolicy),
			"spec.schedulerName":      o.Spec.SchedulerName,
			"spec.serviceAccountName": o.Spec.ServiceAccountName,
			"spec.hostNetwork":        strconv.FormatBool(o.Spec.HostNetwork),
			"status.phase":            string(o.Status.Phase),
			"status.podIP":            podIP,
			// Upstream accepts status.podIPs but never sets it, so it
			// compares as empty.
			"status.podIPs":            "",
			"status.nominatedNodeName": o.Status.NominatedNodeName,
		}
	case *corev1.Event:
		return fields.Set{
			"involvedObject.kind":            o.InvolvedObject.Kind,
			"involvedObject.namespace":       o.InvolvedObject.Namespace,
			"involvedObject.name":            o.InvolvedObject.Name,
			"involvedObject.uid":             string(o.InvolvedObject.UID),
			"involvedObject.apiVersion":      o.InvolvedObject.APIVersion,
			"involvedObject.resourceVersion": o.InvolvedObject.ResourceVersion,
			"involvedObject.fieldPath":       o.InvolvedObject.FieldPath,
			"reason":                         o.Reason,
			"reportingComponent":             o.ReportingController,
			"source":                         eventSource(o.Source.Component, o.ReportingController),
			"type":                           o.Type,
		}
	case *corev1.Secret:
		return fields.Set{"type": string(o.Type)}
	case *corev1.Namespace:
		return fields.Set{"status.phase": string(o.Status.Phase)}
	case *corev1.Node:
		return fields.Set{"spec.unschedulable": strconv.FormatBool(o.Spec.Unschedulable)}
	case *corev1.ReplicationController:
		return fields.Set{"status.replicas": strconv.Itoa(int(o.Status.Replicas))}
	case *corev1.Service:
		return fields.Set{"spec.clusterIP": o.Spec.ClusterIP, "spec.type": string(o.Spec.Type)}
	case *corev1.PersistentVolume:
		return noNamespace(obj)
	}
	return nil
}

// eventsFieldSet is the events.k8s.io/v1 spelling of the Event fields:
// involvedObject became regarding, reportingComponent reportingController.
func eventsFieldSet(obj runtime.Object) fields.Set {
	o := obj.(*eventsv1.Event)
	return fields.Set{
		"regarding.kind":            o.Regarding.Kind,
		"regarding.namespace":       o.Regarding.Namespace,
		"regarding.name":            o.Regarding.Name,
		"regarding.uid":             string(o.Regarding.UID),
		"regarding.apiVersion":      o.Regarding.APIVersion,
		"regarding.resourceVersion": o.Regarding.ResourceVersion,
		"regarding.fieldPath":       o.Regarding.FieldPath,
		"reason":                    o.Reason,
		"reportingController":       o.ReportingController,
		"source":                    eventSource(o.DeprecatedSource.Component, o.ReportingController),
		"type":                      o.Type,
	}
}

// eventSource is the value of the "source" label: the deprecated source
// component, or the reporting controller of events that have none.
func eventSource(component, controller string) string {
	if component == "" {
		return controller
	}
	return component
}

// FieldLabelError is the message of the 400 answer to a field selector on
// label, which r does not support; upstream's wording depends on the kind.
func (r *Resource) FieldLabelError(label string) string {
	switch {
	case r.GVR.Group == "batch" && r.Kind == "Job":
		return fmt.Sprintf("field label %q not supported for Job", label)
	case r.GVR.Group == "" && (r.Kind == "Pod" || r.Kind == "Node" || r.Kind == "ReplicationController" ||
		r.Kind == "Event" || r.Kind == "Namespace" || r.Kind == "Secret" || r.Kind == "Service"),
		r.GVR.Group == "events.k8s.io" && r.Kind == "Event",
		r.GVR.Group == "certificates.k8s.io" && r.Kind == "CertificateSigningRequest":
		return "field label not supported: " + label
	}
	if msg, ok := moreFieldLabelError(r, label); ok {
		return msg
	}
	return fmt.Sprintf("%q is not a known field selector: only %q, %q", label, "metadata.name", "metadata.namespace")
}
