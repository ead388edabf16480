package apis

import (
	certificatesv1 "k8s.io/api/certificates/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

func certificatesTables() map[string]kindTable {
	pcr := certificatesv1.PodCertificateRequestSpec{}.SwaggerDoc()
	return map[string]kindTable{
		"ClusterTrustBundle": {
			cols: []metav1.TableColumnDefinition{col("SignerName", "string", certificatesv1.ClusterTrustBundleSpec{}.SwaggerDoc()["signerName"], 0)},
			row: func(o runtime.Object) []any {
				return []any{orNone(o.(*certificatesv1.ClusterTrustBundle).Spec.SignerName)}
			},
		},
		"PodCertificateRequest": {
			cols: []metav1.TableColumnDefinition{
				col("PodName", "string", pcr["podName"], 0),
				col("ServiceAccountName", "string", pcr["serviceAccountName"], 0),
				col("NodeName", "string", pcr["nodeName"], 0),
				col("SignerName", "string", pcr["signerName"], 0),
				col("State", "string", "Is the request Pending, Issued, Denied, or Failed?", 0),
				col("UnverifiedUserAnnotations", "string", pcr["unverifiedUserAnnotations"], 0),
			},
			row: func(o runtime.Object) []any {
				r := o.(*certificatesv1.PodCertificateRequest)
				state := "Pending"
				for _, c := range r.Status.Conditions {
					switch c.Type {
					case certificatesv1.PodCertificateRequestConditionTypeIssued, certificatesv1.PodCertificateRequestConditionTypeDenied,
						certificatesv1.PodCertificateRequestConditionTypeFailed:
						state = c.Type
					}
				}
				return []any{r.Spec.PodName, r.Spec.ServiceAccountName, string(r.Spec.NodeName), r.Spec.SignerName, state,
					labels.FormatLabels(r.Spec.UnverifiedUserAnnotations)}
			},
		},
		"StorageVersionMigration": {
			cols: []metav1.TableColumnDefinition{
				col("Resource", "string", "GroupResource to migrate", 0),
				col("Status", "string", "Status of the migration", 0),
			},
			row: func(o runtime.Object) []any {
				m := o.(*storagemigrationv1.StorageVersionMigration)
				status := "Unknown"
				for _, c := range m.Status.Conditions {
					if c.Status != metav1.ConditionTrue {
						continue
					}
					switch storagemigrationv1.MigrationConditionType(c.Type) {
					case storagemigrationv1.MigrationRunning, storagemigrationv1.MigrationFailed, storagemigrationv1.MigrationSucceeded:
						status = c.Type
					}
				}
				return []any{m.Spec.Resource.String(), status}
			},
		},
	}
}
