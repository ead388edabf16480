package flowcontrol

import (
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"

	"k8s.io/utils/ptr"
)

func TestReviseFollowsAutoUpdateAnnotation(t *testing.T) {
	want := apfdefaults.SuggestedFlowSchemas()[len(apfdefaults.SuggestedFlowSchemas())-1] // global-default
	edited := func(annotation *string, generation int64) *flowcontrolv1.FlowSchema {
		fs := want.DeepCopy()
		fs.Spec.MatchingPrecedence = 5000 // a user's change
		fs.Generation = generation
		fs.Annotations = map[string]string{}
		if annotation != nil {
			fs.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] = *annotation
		}
		return fs
	}
	str := func(s string) *string { return &s }
	tests := []struct {
		name      string
		cur       *flowcontrolv1.FlowSchema
		mandatory bool
		reverted  bool
	}{
		{"suggested, annotation true", edited(str("true"), 2), false, true},
		{"suggested, annotation false", edited(str("false"), 2), false, false},
		{"suggested, no annotation, first generation", edited(nil, 1), false, true},
		{"suggested, no annotation, edited since", edited(nil, 3), false, false},
		{"suggested, annotation not a boolean, edited since", edited(str("maybe"), 3), false, false},
		{"mandatory ignores the annotation", edited(str("false"), 2), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := ReviseFlowSchema(tc.cur, want, tc.mandatory)
			if (next != nil) != tc.reverted {
				t.Fatalf("revised = %v, want %v", next != nil, tc.reverted)
			}
			if next == nil {
				return
			}
			if next.Spec.MatchingPrecedence != 9900 || next.Annotations[flowcontrolv1.AutoUpdateAnnotationKey] != "true" {
				t.Fatalf("revised to precedence %d, annotation %q", next.Spec.MatchingPrecedence, next.Annotations[flowcontrolv1.AutoUpdateAnnotationKey])
			}
			if tc.cur.Spec.MatchingPrecedence != 5000 {
				t.Fatal("the stored object was modified")
			}
		})
	}
	if next := ReviseFlowSchema(want.DeepCopy(), want, false); next != nil {
		t.Fatal("an up-to-date object was revised")
	}
}

func TestReviseExemptLevelKeepsItsShares(t *testing.T) {
	want := apfdefaults.MandatoryPriorityLevels()[1]
	cur := want.DeepCopy()
	cur.Spec.Exempt.NominalConcurrencyShares = ptr.To[int32](10)
	if next := RevisePriorityLevel(cur, want, true); next != nil {
		t.Fatalf("exempt shares reverted: %+v", next.Spec.Exempt)
	}
	cur.Spec.Type = flowcontrolv1.PriorityLevelEnablementLimited
	next := RevisePriorityLevel(cur, want, true)
	if next == nil || next.Spec.Type != flowcontrolv1.PriorityLevelEnablementExempt || *next.Spec.Exempt.NominalConcurrencyShares != 10 {
		t.Fatalf("revised = %+v", next)
	}
}

func TestIsUnwanted(t *testing.T) {
	names := map[string]bool{"global-default": true}
	meta := func(name, annotation string) *metav1.ObjectMeta {
		return &metav1.ObjectMeta{Name: name, Annotations: map[string]string{flowcontrolv1.AutoUpdateAnnotationKey: annotation}}
	}
	if !IsUnwanted(meta("dropped-default", "true"), names) {
		t.Error("a server-made object no longer in the defaults is kept")
	}
	if IsUnwanted(meta("users-own", ""), names) || IsUnwanted(meta("users-own", "false"), names) {
		t.Error("a user's object would be removed")
	}
	if IsUnwanted(meta("global-default", "true"), names) {
		t.Error("a default would be removed")
	}
}

func TestDanglingCondition(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	fs := apfdefaults.SuggestedFlowSchemas()[0]
	cond, changed := DanglingCondition(fs, false, now)
	if !changed || cond.Status != flowcontrolv1.ConditionTrue || cond.Reason != "NotFound" ||
		cond.Message != `This FlowSchema references the PriorityLevelConfiguration object named "system" but there is no such object` ||
		!cond.LastTransitionTime.Time.Equal(now) {
		t.Fatalf("missing level: %+v, changed %v", cond, changed)
	}
	fs.Status.Conditions = []flowcontrolv1.FlowSchemaCondition{cond}
	if _, changed := DanglingCondition(fs, false, now.Add(time.Hour)); changed {
		t.Fatal("an unchanged condition would be rewritten")
	}
	cond, changed = DanglingCondition(fs, true, now.Add(time.Hour))
	if !changed || cond.Status != flowcontrolv1.ConditionFalse || cond.Reason != "Found" ||
		cond.Message != `This FlowSchema references the PriorityLevelConfiguration object named "system" and it exists` ||
		!cond.LastTransitionTime.Time.Equal(now.Add(time.Hour)) {
		t.Fatalf("level found: %+v, changed %v", cond, changed)
	}
}

func TestRetryAfterGrowsWithDropsAndShrinks(t *testing.T) {
	var r retryAfter
	start := time.Unix(1000, 0)
	if got := r.record(start); got != 1 {
		t.Fatalf("first Retry-After %d, want 1", got)
	}
	// Many drops each second push it up.
	var got int64
	for s := range 10 {
		for range 50 {
			got = r.record(start.Add(time.Duration(s) * time.Second))
		}
	}
	if got < 4 {
		t.Fatalf("after heavy drops Retry-After is %d, want it grown", got)
	}
	// A quiet spell brings it back down.
	peak := got
	for s := 20; s < 120; s += 2 {
		got = r.record(start.Add(time.Duration(s) * time.Second))
	}
	if got >= peak || got > maxRetryAfter {
		t.Fatalf("after quiet drops Retry-After is %d (peak %d)", got, peak)
	}
}
