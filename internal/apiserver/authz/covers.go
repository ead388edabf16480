package authz

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Covers reports whether owner holds every permission of servant, as
// upstream's escalation check decides it, and returns the permissions it
// lacks, each as a single-verb, single-resource rule.
func Covers(owner, servant []rbacv1.PolicyRule) (bool, []rbacv1.PolicyRule) {
	var missing []rbacv1.PolicyRule
	for _, r := range servant {
		for _, small := range BreakdownRule(r) {
			covered := false
			for i := range owner {
				if ruleCovers(&owner[i], &small) {
					covered = true
					break
				}
			}
			if !covered {
				missing = append(missing, small)
			}
		}
	}
	return len(missing) == 0, missing
}

// BreakdownRule splits r into rules of one verb, group, resource and
// resource name (or one verb and URL).
func BreakdownRule(r rbacv1.PolicyRule) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				if len(r.ResourceNames) == 0 {
					out = append(out, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, Verbs: []string{v}})
					continue
				}
				for _, n := range r.ResourceNames {
					out = append(out, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: []string{res}, ResourceNames: []string{n}, Verbs: []string{v}})
				}
			}
		}
	}
	for _, u := range r.NonResourceURLs {
		for _, v := range r.Verbs {
			out = append(out, rbacv1.PolicyRule{NonResourceURLs: []string{u}, Verbs: []string{v}})
		}
	}
	return out
}

func ruleCovers(owner, sub *rbacv1.PolicyRule) bool {
	verbs := has(owner.Verbs, rbacv1.VerbAll) || hasAll(owner.Verbs, sub.Verbs)
	groups := has(owner.APIGroups, rbacv1.APIGroupAll) || hasAll(owner.APIGroups, sub.APIGroups)
	var names bool
	if len(sub.ResourceNames) == 0 {
		names = len(owner.ResourceNames) == 0
	} else {
		names = len(owner.ResourceNames) == 0 || hasAll(owner.ResourceNames, sub.ResourceNames)
	}
	return verbs && groups && names &&
		resourcesCoverAll(owner.Resources, sub.Resources) &&
		urlsCoverAll(owner.NonResourceURLs, sub.NonResourceURLs)
}

func has(set []string, s string) bool {
	for _, x := range set {
		if x == s {
			return true
		}
	}
	return false
}

func hasAll(set, want []string) bool {
	for _, w := range want {
		if !has(set, w) {
			return false
		}
	}
	return true
}

// resourcesCoverAll: "*" covers everything, "*/sub" covers any resource's
// sub, otherwise names must match exactly.
func resourcesCoverAll(set, want []string) bool {
	if has(set, rbacv1.ResourceAll) {
		return true
	}
	for _, w := range want {
		if has(set, w) {
			continue
		}
		_, sub, ok := strings.Cut(w, "/")
		if !ok || !has(set, "*/"+sub) {
			return false
		}
	}
	return true
}

func urlsCoverAll(set, want []string) bool {
	for _, w := range want {
		covered := false
		for _, s := range set {
			if s == w || (strings.HasSuffix(s, "*") && strings.HasPrefix(w, strings.TrimRight(s, "*"))) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// CompactRules merges rules about the same single group, resource and
// (at most one) resource name into one rule with all their verbs, which
// keeps escalation messages short.
func CompactRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	type key struct{ group, resource, name string }
	var out []rbacv1.PolicyRule
	simple := map[key]int{} // index into out
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 1 || len(r.APIGroups) != 1 || len(r.Resources) != 1 {
			out = append(out, r)
			continue
		}
		k := key{r.APIGroups[0], r.Resources[0], ""}
		if len(r.ResourceNames) == 1 {
			k.name = r.ResourceNames[0]
		}
		if i, ok := simple[k]; ok {
			out[i].Verbs = append(out[i].Verbs, r.Verbs...)
			continue
		}
		simple[k] = len(out)
		r.Verbs = append([]string(nil), r.Verbs...)
		out = append(out, r)
	}
	return out
}

// CompactString formats r as upstream's error messages do, e.g.
// {APIGroups:[""], Resources:["secrets"], Verbs:["get"]}.
func CompactString(r rbacv1.PolicyRule) string {
	var parts []string
	add := func(name string, v []string) {
		if len(v) > 0 {
			parts = append(parts, fmt.Sprintf("%s:%q", name, v))
		}
	}
	add("APIGroups", r.APIGroups)
	add("Resources", r.Resources)
	add("NonResourceURLs", r.NonResourceURLs)
	add("ResourceNames", r.ResourceNames)
	add("Verbs", r.Verbs)
	return "{" + strings.Join(parts, ", ") + "}"
}

// DescribeRules is the sorted, de-duplicated list of compacted rules, one
// a line, as upstream lists permissions a user lacks.
func DescribeRules(rules []rbacv1.PolicyRule) string {
	seen := map[string]bool{}
	var lines []string
	for _, r := range CompactRules(rules) {
		s := CompactString(r)
		if !seen[s] {
			seen[s] = true
			lines = append(lines, s)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
