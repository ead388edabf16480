package apis

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// networkingTable gives kubectl's columns for ServiceCIDR and IPAddress.
func networkingTable(kind string) ([]metav1.TableColumnDefinition, func(runtime.Object) []any) {
	switch kind {
	case "ServiceCIDR":
		return []metav1.TableColumnDefinition{
				col("CIDRs", "string", networkingv1.ServiceCIDRSpec{}.SwaggerDoc()["cidrs"], 0), ageCol,
			}, func(o runtime.Object) []any {
				return []any{strings.Join(o.(*networkingv1.ServiceCIDR).Spec.CIDRs, ","), age(o)}
			}
	case "IPAddress":
		// Upstream declares no Age column (and sends an age cell beyond
		// its columns, which kubectl ignores; rows here match columns).
		return []metav1.TableColumnDefinition{
				col("ParentRef", "string", networkingv1.IPAddressSpec{}.SwaggerDoc()["parentRef"], 0),
			}, func(o runtime.Object) []any {
				return []any{parentRefString(o.(*networkingv1.IPAddress).Spec.ParentRef)}
			}
	}
	return nil, nil
}

// parentRefString is "services/default/web": group-qualified resource,
// then namespace when set, then name.
func parentRefString(ref *networkingv1.ParentReference) string {
	if ref == nil {
		return "<none>"
	}
	s := strings.ToLower(schema.GroupResource{Group: ref.Group, Resource: ref.Resource}.String())
	if ref.Namespace != "" {
		s += "/" + ref.Namespace
	}
	return s + "/" + ref.Name
}

// componentStatusTable gives kubectl's columns for ComponentStatus, which
// has no Age column.
func componentStatusTable() ([]metav1.TableColumnDefinition, func(runtime.Object) []any) {
	return []metav1.TableColumnDefinition{
			col("Status", "string", "Status of the component conditions", 0),
			col("Message", "string", "Message of the component conditions", 0),
			col("Error", "string", "Error of the component conditions", 0),
		}, func(o runtime.Object) []any {
			status, msg, errMsg := "Unknown", "", ""
			for _, c := range o.(*corev1.ComponentStatus).Conditions {
				if c.Type != corev1.ComponentHealthy {
					continue
				}
				status = "Unhealthy"
				if c.Status == corev1.ConditionTrue {
					status = "Healthy"
				}
				msg, errMsg = c.Message, c.Error
				break
			}
			return []any{status, msg, errMsg}
		}
}
