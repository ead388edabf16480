package apis

import (
	"strings"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func resourceTables() map[string]kindTable {
	ageOnly := kindTable{cols: []metav1.TableColumnDefinition{ageCol}, row: func(o runtime.Object) []any { return []any{age(o)} }}
	taint := resourcev1.DeviceTaint{}.SwaggerDoc()
	return map[string]kindTable{
		"DeviceClass":           ageOnly,
		"ResourceClaimTemplate": ageOnly,
		"ResourceClaim": {
			cols: []metav1.TableColumnDefinition{
				col("State", "string", "A summary of the current state (allocated, pending, reserved, etc.).", 0), ageCol,
			},
			row: func(o runtime.Object) []any { return []any{claimState(o.(*resourcev1.ResourceClaim)), age(o)} },
		},
		"ResourceSlice": {
			cols: []metav1.TableColumnDefinition{
				col("Node", "string", resourcev1.ResourceSliceSpec{}.SwaggerDoc()["nodeName"], 0),
				col("Driver", "string", resourcev1.ResourceSliceSpec{}.SwaggerDoc()["driver"], 0),
				col("Pool", "string", resourcev1.ResourcePool{}.SwaggerDoc()["name"], 0),
				ageCol,
			},
			row: func(o runtime.Object) []any {
				s := o.(*resourcev1.ResourceSlice)
				node := ""
				if s.Spec.NodeName != nil {
					node = *s.Spec.NodeName
				}
				return []any{node, s.Spec.Driver, s.Spec.Pool.Name, age(o)}
			},
		},
		"DeviceTaintRule": {
			cols: []metav1.TableColumnDefinition{
				col("Key", "string", taint["key"], 0),
				col("Value", "string", taint["value"], 0),
				col("Effect", "string", taint["effect"], 0),
				col("TimeAdded", "string", taint["timeAdded"], 0),
				ageCol,
			},
			row: func(o runtime.Object) []any {
				t := &o.(*resourcev1.DeviceTaintRule).Spec.Taint
				added := ""
				if t.TimeAdded != nil {
					added = HumanAge(t.TimeAdded.Time, time.Now())
				}
				return []any{t.Key, t.Value, string(t.Effect), added, age(o)}
			},
		},
	}
}

// claimState summarises a claim: deleted, pending, allocated, reserved.
func claimState(c *resourcev1.ResourceClaim) string {
	var states []string
	if c.DeletionTimestamp != nil {
		states = append(states, "deleted")
	}
	switch {
	case c.Status.Allocation != nil:
		states = append(states, "allocated")
		if len(c.Status.ReservedFor) > 0 {
			states = append(states, "reserved")
		}
	case c.DeletionTimestamp == nil:
		states = append(states, "pending")
	}
	return strings.Join(states, ",")
}
