package apis

import (
	"strings"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

type kindTable struct {
	cols []metav1.TableColumnDefinition
	row  func(runtime.Object) []any
}

// tablesMore returns the kubectl get columns of the kinds registered in
// registry_more.go, as upstream's printers define them.
func tablesMore(kind string) ([]metav1.TableColumnDefinition, func(runtime.Object) []any) {
	for _, m := range []map[string]kindTable{storageTables(), resourceTables(), autoscalingTables(), certificatesTables()} {
		if t, ok := m[kind]; ok {
			return t.cols, t.row
		}
	}
	return nil, nil
}

func boolOrDefault(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func storageTables() map[string]kindTable {
	driver := storagev1.CSIDriverSpec{}.SwaggerDoc()
	attacher := col("Attacher", "string", storagev1.VolumeAttachmentSpec{}.SwaggerDoc()["attacher"], 0)
	attacher.Format = "name"
	return map[string]kindTable{
		"CSIDriver": {
			cols: []metav1.TableColumnDefinition{
				col("AttachRequired", "boolean", driver["attachRequired"], 0),
				col("PodInfoOnMount", "boolean", driver["podInfoOnMount"], 0),
				col("StorageCapacity", "boolean", driver["storageCapacity"], 0),
				col("TokenRequests", "string", driver["tokenRequests"], 0),
				col("RequiresRepublish", "boolean", driver["requiresRepublish"], 0),
				col("Modes", "string", driver["volumeLifecycleModes"], 0),
				ageCol,
			},
			row: func(o runtime.Object) []any {
				s := &o.(*storagev1.CSIDriver).Spec
				tokens := "<unset>"
				if s.TokenRequests != nil {
					auds := make([]string, len(s.TokenRequests))
					for i, t := range s.TokenRequests {
						auds[i] = t.Audience
					}
					tokens = strings.Join(auds, ",")
				}
				modes := make([]string, len(s.VolumeLifecycleModes))
				for i, m := range s.VolumeLifecycleModes {
					modes[i] = string(m)
				}
				return []any{boolOrDefault(s.AttachRequired, true), boolOrDefault(s.PodInfoOnMount, false), boolOrDefault(s.StorageCapacity, false),
					tokens, boolOrDefault(s.RequiresRepublish, false), orNone(strings.Join(modes, ",")), age(o)}
			},
		},
		"CSINode": {
			cols: []metav1.TableColumnDefinition{
				col("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node", 0), ageCol,
			},
			row: func(o runtime.Object) []any { return []any{int64(len(o.(*storagev1.CSINode).Spec.Drivers)), age(o)} },
		},
		"CSIStorageCapacity": {
			cols: []metav1.TableColumnDefinition{
				col("StorageClassName", "string", storagev1.CSIStorageCapacity{}.SwaggerDoc()["storageClassName"], 0),
				col("Capacity", "string", storagev1.CSIStorageCapacity{}.SwaggerDoc()["capacity"], 0),
			},
			row: func(o runtime.Object) []any {
				c := o.(*storagev1.CSIStorageCapacity)
				capacity := "<unset>"
				if c.Capacity != nil {
					capacity = c.Capacity.String()
				}
				return []any{c.StorageClassName, capacity}
			},
		},
		"VolumeAttachment": {
			cols: []metav1.TableColumnDefinition{
				attacher,
				col("PV", "string", storagev1.VolumeAttachmentSource{}.SwaggerDoc()["persistentVolumeName"], 0),
				col("Node", "string", storagev1.VolumeAttachmentSpec{}.SwaggerDoc()["nodeName"], 0),
				col("Attached", "boolean", storagev1.VolumeAttachmentStatus{}.SwaggerDoc()["attached"], 0),
				ageCol,
			},
			row: func(o runtime.Object) []any {
				va := o.(*storagev1.VolumeAttachment)
				pv := ""
				if va.Spec.Source.PersistentVolumeName != nil {
					pv = *va.Spec.Source.PersistentVolumeName
				}
				return []any{va.Spec.Attacher, pv, va.Spec.NodeName, va.Status.Attached, age(o)}
			},
		},
		"VolumeAttributesClass": {
			cols: []metav1.TableColumnDefinition{
				col("DriverName", "string", storagev1.VolumeAttributesClass{}.SwaggerDoc()["driverName"], 0), ageCol,
			},
			row: func(o runtime.Object) []any { return []any{o.(*storagev1.VolumeAttributesClass).DriverName, age(o)} },
		},
	}
}
