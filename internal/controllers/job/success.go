package job

import (
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
)

// parseIndexes reads an index set such as "0-2,4" (completedIndexes, or a
// success policy's succeededIndexes), keeping the indexes below
// completions. Malformed intervals are skipped.
func parseIndexes(s string, completions int) map[int]bool {
	out := map[int]bool{}
	if s == "" {
		return out
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			continue
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				continue
			}
		}
		for i := first; i <= last && i < completions; i++ {
			out[i] = true
		}
	}
	return out
}

// matchSuccessPolicy returns the message of the SuccessCriteriaMet
// condition when one of the job's success policy rules holds for the
// succeeded indexes: rules are tried in order and the first match wins.
func matchSuccessPolicy(policy *batchv1.SuccessPolicy, completions int, succeeded map[int]bool) (string, bool) {
	if policy == nil || len(succeeded) == 0 {
		return "", false
	}
	for i, r := range policy.Rules {
		met := false
		switch {
		case r.SucceededIndexes != nil:
			required := parseIndexes(*r.SucceededIndexes, completions)
			if len(required) == 0 {
				continue // unusable rule
			}
			n := 0
			for idx := range required {
				if succeeded[idx] {
					n++
				}
			}
			if r.SucceededCount != nil {
				met = n >= int(*r.SucceededCount)
			} else {
				met = n == len(required)
			}
		case r.SucceededCount != nil:
			met = len(succeeded) >= int(*r.SucceededCount)
		}
		if met {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}
