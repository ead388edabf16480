package apis

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

var createdAtCol = col("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0)

func createdAt(o runtime.Object) any {
	return o.(metav1.ObjectMetaAccessor).GetObjectMeta().GetCreationTimestamp().UTC().Format(time.RFC3339)
}

// moreTables covers the kinds of the non-workload groups.
func moreTables(kind string) ([]metav1.TableColumnDefinition, func(runtime.Object) []any) {
	switch kind {
	case "Role", "ClusterRole", "LimitRange":
		return []metav1.TableColumnDefinition{createdAtCol}, func(o runtime.Object) []any { return []any{createdAt(o)} }
	case "RoleBinding", "ClusterRoleBinding":
		return []metav1.TableColumnDefinition{
				col("Role", "string", "RoleRef references the Role this binding grants.", 0), ageCol,
				col("Users", "string", "Users in the binding", 1),
				col("Groups", "string", "Groups in the binding", 1),
				col("ServiceAccounts", "string", "ServiceAccounts in the binding", 1),
			}, func(o runtime.Object) []any {
				var ref rbacv1.RoleRef
				var subjects []rbacv1.Subject
				switch b := o.(type) {
				case *rbacv1.RoleBinding:
					ref, subjects = b.RoleRef, b.Subjects
				case *rbacv1.ClusterRoleBinding:
					ref, subjects = b.RoleRef, b.Subjects
				}
				var users, groups, sas []string
				for _, s := range subjects {
					switch s.Kind {
					case rbacv1.UserKind:
						users = append(users, s.Name)
					case rbacv1.GroupKind:
						groups = append(groups, s.Name)
					case rbacv1.ServiceAccountKind:
						sas = append(sas, s.Namespace+"/"+s.Name)
					}
				}
				return []any{ref.Kind + "/" + ref.Name, age(o), strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
			}
	case "PriorityClass":
		return []metav1.TableColumnDefinition{
				col("Value", "integer", "The value of this priority class.", 0),
				col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority.", 0),
				ageCol,
				col("PreemptionPolicy", "string", "The policy for preempting pods with lower priority.", 0),
			}, func(o runtime.Object) []any {
				pc := o.(*schedulingv1.PriorityClass)
				policy := string(corev1.PreemptLowerPriority)
				if pc.PreemptionPolicy != nil {
					policy = string(*pc.PreemptionPolicy)
				}
				return []any{int64(pc.Value), pc.GlobalDefault, age(o), policy}
			}
	case "CertificateSigningRequest":
		return []metav1.TableColumnDefinition{
				ageCol,
				col("SignerName", "string", "The signer of the certificate.", 0),
				col("Requestor", "string", "The user who asked for it.", 0),
				col("RequestedDuration", "string", "The requested lifetime.", 0),
				col("Condition", "string", "Approved, Denied, Issued or Pending.", 0),
			}, func(o runtime.Object) []any {
				csr := o.(*certificatesv1.CertificateSigningRequest)
				dur := "<none>"
				if csr.Spec.ExpirationSeconds != nil {
					dur = duration.HumanDuration(time.Duration(*csr.Spec.ExpirationSeconds) * time.Second)
				}
				return []any{age(o), csr.Spec.SignerName, csr.Spec.Username, dur, csrCondition(csr)}
			}
	case "Lease":
		return []metav1.TableColumnDefinition{
				col("Holder", "string", "The holder of the lease.", 0), ageCol,
			}, func(o runtime.Object) []any {
				return []any{derefStr(o.(*coordinationv1.Lease).Spec.HolderIdentity), age(o)}
			}
	case "EndpointSlice":
		return []metav1.TableColumnDefinition{
				col("AddressType", "string", "The IP protocol for this slice", 0),
				col("Ports", "string", "The ports of this slice", 0),
				col("Endpoints", "string", "The endpoints of this slice", 0), ageCol,
			}, func(o runtime.Object) []any {
				s := o.(*discoveryv1.EndpointSlice)
				var ports, addrs []string
				for _, p := range s.Ports {
					if p.Port != nil {
						ports = append(ports, fmt.Sprint(*p.Port))
					}
				}
				for _, e := range s.Endpoints {
					addrs = append(addrs, e.Addresses...)
				}
				return []any{string(s.AddressType), orUnset(strings.Join(ports, ",")), orUnset(strings.Join(addrs, ",")), age(o)}
			}
	case "Ingress":
		return []metav1.TableColumnDefinition{
				col("Class", "string", "The name of the IngressClass resource that should be used", 0),
				col("Hosts", "string", "Hosts that incoming requests are matched against", 0),
				col("Address", "string", "Address is a list containing ingress points for the load-balancer", 0),
				col("Ports", "string", "Ports of TLS configurations that open", 0), ageCol,
			}, func(o runtime.Object) []any {
				in := o.(*networkingv1.Ingress)
				var hosts, addrs []string
				for _, r := range in.Spec.Rules {
					hosts = append(hosts, r.Host)
				}
				if len(hosts) == 0 {
					hosts = []string{"*"}
				}
				for _, lb := range in.Status.LoadBalancer.Ingress {
					addrs = append(addrs, orElse(lb.IP, lb.Hostname))
				}
				ports := "80"
				if len(in.Spec.TLS) > 0 {
					ports = "80, 443"
				}
				return []any{orNone(derefStr(in.Spec.IngressClassName)), strings.Join(hosts, ","), strings.Join(addrs, ","), ports, age(o)}
			}
	case "IngressClass":
		return []metav1.TableColumnDefinition{
				col("Controller", "string", "Controller that is responsible for handling this class", 0),
				col("Parameters", "string", "A reference to a resource with additional parameters", 0), ageCol,
			}, func(o runtime.Object) []any {
				c := o.(*networkingv1.IngressClass)
				params := "<none>"
				if p := c.Spec.Parameters; p != nil {
					params = p.Kind + "/" + p.Name
				}
				return []any{c.Spec.Controller, params, age(o)}
			}
	case "NetworkPolicy":
		return []metav1.TableColumnDefinition{
				col("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies.", 0), ageCol,
			}, func(o runtime.Object) []any {
				return []any{selectorString(&o.(*networkingv1.NetworkPolicy).Spec.PodSelector), age(o)}
			}
	case "StorageClass":
		return []metav1.TableColumnDefinition{
				col("Provisioner", "string", "Indicates the type of the provisioner.", 0),
				col("ReclaimPolicy", "string", "Indicates the type of the reclaim policy.", 0),
				col("VolumeBindingMode", "string", "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound", 0),
				col("AllowVolumeExpansion", "string", "Indicates whether the storage class allow volume expand", 0), ageCol,
			}, func(o runtime.Object) []any {
				s := o.(*storagev1.StorageClass)
				reclaim := "Delete"
				if s.ReclaimPolicy != nil {
					reclaim = string(*s.ReclaimPolicy)
				}
				mode := "Immediate"
				if s.VolumeBindingMode != nil {
					mode = string(*s.VolumeBindingMode)
				}
				return []any{s.Provisioner, reclaim, mode, s.AllowVolumeExpansion != nil && *s.AllowVolumeExpansion, age(o)}
			}
	case "PodDisruptionBudget":
		return []metav1.TableColumnDefinition{
				col("Min Available", "string", "The minimum number of pods that must be available", 0),
				col("Max Unavailable", "string", "The maximum number of pods that may be unavailable", 0),
				col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time", 0), ageCol,
			}, func(o runtime.Object) []any {
				p := o.(*policyv1.PodDisruptionBudget)
				minA, maxU := "N/A", "N/A"
				if p.Spec.MinAvailable != nil {
					minA = p.Spec.MinAvailable.String()
				}
				if p.Spec.MaxUnavailable != nil {
					maxU = p.Spec.MaxUnavailable.String()
				}
				return []any{minA, maxU, int64(p.Status.DisruptionsAllowed), age(o)}
			}
	case "ControllerRevision":
		return []metav1.TableColumnDefinition{
				col("Controller", "string", "Controller of the object", 0),
				col("Revision", "integer", "Revision of the ControllerRevision", 0), ageCol,
			}, func(o runtime.Object) []any {
				r := o.(*appsv1.ControllerRevision)
				ctrl := "<none>"
				if ref := metav1.GetControllerOf(r); ref != nil {
					ctrl = strings.ToLower(ref.Kind) + "." + groupOf(ref.APIVersion) + "/" + ref.Name
				}
				return []any{ctrl, r.Revision, age(o)}
			}
	case "ResourceQuota":
		return []metav1.TableColumnDefinition{
				ageCol,
				col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume.", 0),
				col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.", 0),
			}, func(o runtime.Object) []any {
				q := o.(*corev1.ResourceQuota)
				var req, lim []string
				for name, hard := range q.Status.Hard {
					used := q.Status.Used[name]
					entry := fmt.Sprintf("%s: %s/%s", name, used.String(), hard.String())
					if strings.HasPrefix(string(name), "limits.") {
						lim = append(lim, entry)
					} else {
						req = append(req, entry)
					}
				}
				return []any{age(o), strings.Join(req, ", "), strings.Join(lim, ", ")}
			}
	case "Event":
		return eventColumns, func(o runtime.Object) []any {
			switch e := o.(type) {
			case *corev1.Event:
				return eventRow(e.LastTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time, e.Type, e.Reason,
					e.InvolvedObject, e.Source.Component, e.Message, e.FirstTimestamp.Time, e.Count, e.Name)
			case *eventsv1.Event:
				count := int32(1)
				last := e.EventTime.Time
				if e.Series != nil {
					count, last = e.Series.Count, e.Series.LastObservedTime.Time
				}
				return eventRow(last, e.EventTime.Time, e.CreationTimestamp.Time, e.Type, e.Reason,
					e.Regarding, e.ReportingController, e.Note, e.EventTime.Time, count, e.Name)
			}
			return nil
		}
	}
	return nil, nil
}

var eventColumns = []metav1.TableColumnDefinition{
	col("Last Seen", "string", "Time when this Event was last observed.", 0),
	col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future.", 0),
	col("Reason", "string", "This should be a short, machine understandable string that gives the reason for this event being generated.", 0),
	col("Object", "string", "The object that this event is about.", 0),
	col("Subobject", "string", "The subobject this event is about.", 1),
	col("Source", "string", "The component reporting this event.", 1),
	col("Message", "string", "A human-readable description of the status of this operation.", 0),
	col("First Seen", "string", "The time at which the event was first recorded.", 1),
	col("Count", "string", "The number of times this event has occurred.", 1),
	col("Name", "string", "Name of the event.", 1),
}

func eventRow(last, eventTime, created time.Time, typ, reason string, obj corev1.ObjectReference, source, msg string, first time.Time, count int32, name string) []any {
	now := time.Now()
	seen := last
	if seen.IsZero() {
		seen = eventTime
	}
	if seen.IsZero() {
		seen = created
	}
	firstSeen := first
	if firstSeen.IsZero() {
		firstSeen = seen
	}
	return []any{HumanAge(seen, now), typ, reason, strings.ToLower(obj.Kind) + "/" + obj.Name, obj.FieldPath, source, msg,
		HumanAge(firstSeen, now), fmt.Sprint(max(count, 1)), name}
}

func groupOf(apiVersion string) string {
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		return g
	}
	return ""
}

func orUnset(s string) string {
	if s == "" {
		return "<unset>"
	}
	return s
}

// csrCondition is kubectl's CONDITION column: the conditions, then Issued
// once a certificate is there.
func csrCondition(csr *certificatesv1.CertificateSigningRequest) string {
	var parts []string
	for _, c := range csr.Status.Conditions {
		parts = append(parts, string(c.Type))
	}
	if len(csr.Status.Certificate) > 0 {
		parts = append(parts, "Issued")
	}
	if len(parts) == 0 {
		return "Pending"
	}
	return strings.Join(parts, ",")
}
