package differential

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// discoveryAllowlist are the API groups whose discovery may differ: Skiff
// serves them differently on purpose (metrics). Nothing else may differ.
var discoveryAllowlist = map[string]string{
	// Upstream serves node and pod metrics only through metrics-server behind
	// an APIService; Skiff's API server answers them itself.
	"metrics.k8s.io": "served built in by Skiff, by metrics-server on upstream",
}

const aggregatedMedia = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// getJSON GETs path with accept and decodes the answer into out.
func (e *endpoint) getJSON(path, accept string, out any) error {
	req, err := e.newRequest(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s GET %s: %w", e.name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s GET %s: %w", e.name, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s GET %s: %d %s", e.name, path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s GET %s: decode: %w", e.name, path, err)
	}
	return nil
}

// discoveryFacts flattens what e serves into "key → description" facts:
// one per group, per legacy resource entry and per aggregated resource,
// so two servers can be compared fact by fact. group names each key's
// API group, for the allowlist.
func discoveryFacts(e *endpoint) (facts map[string]string, group map[string]string, err error) {
	facts, group = map[string]string{}, map[string]string{}
	add := func(g, key, val string) { facts[key], group[key] = val, g }

	var core metav1.APIVersions
	if err := e.getJSON("/api", "application/json", &core); err != nil {
		return nil, nil, err
	}
	add("", "/api versions", strings.Join(core.Versions, ","))
	var groups metav1.APIGroupList
	if err := e.getJSON("/apis", "application/json", &groups); err != nil {
		return nil, nil, err
	}
	var order []string
	type gvPath struct{ group, gv, path string }
	gvs := []gvPath{}
	for _, v := range core.Versions {
		gvs = append(gvs, gvPath{"", v, "/api/" + v})
	}
	for _, g := range groups.Groups {
		if _, ok := discoveryAllowlist[g.Name]; !ok {
			order = append(order, g.Name)
		}
		var vs []string
		for _, v := range g.Versions {
			vs = append(vs, v.GroupVersion)
			gvs = append(gvs, gvPath{g.Name, v.GroupVersion, "/apis/" + v.GroupVersion})
		}
		add(g.Name, "/apis group "+g.Name, fmt.Sprintf("versions=%v preferred=%s", vs, g.PreferredVersion.GroupVersion))
	}
	// kubectl and clients pick the first group serving a resource: order
	// matters (allowlisted groups left out, so they cannot shift it).
	add("", "/apis group order", strings.Join(order, ","))

	for _, gv := range gvs {
		var list metav1.APIResourceList
		if err := e.getJSON(gv.path, "application/json", &list); err != nil {
			return nil, nil, err
		}
		for _, r := range list.APIResources {
			add(gv.group, "legacy "+gv.gv+" "+r.Name, fmt.Sprintf(
				"kind=%s group=%s version=%s singular=%s namespaced=%t verbs=%v short=%v categories=%v",
				r.Kind, r.Group, r.Version, r.SingularName, r.Namespaced, sorted(r.Verbs), r.ShortNames, r.Categories))
		}
	}

	for _, p := range []string{"/api", "/apis"} {
		var aggr apidiscoveryv2.APIGroupDiscoveryList
		if err := e.getJSON(p, aggregatedMedia, &aggr); err != nil {
			return nil, nil, err
		}
		if aggr.Kind != "APIGroupDiscoveryList" {
			add("", "aggregated "+p+" kind", aggr.Kind)
		}
		for _, g := range aggr.Items {
			var vs []string
			for _, v := range g.Versions {
				vs = append(vs, v.Version)
				gv := v.Version
				if g.Name != "" {
					gv = g.Name + "/" + v.Version
				}
				add(g.Name, "aggregated "+gv+" freshness", string(v.Freshness))
				for _, r := range v.Resources {
					var subs []string
					for _, s := range r.Subresources {
						subs = append(subs, fmt.Sprintf("%s{kind=%s verbs=%v accept=%v}",
							s.Subresource, gvkString(s.ResponseKind), sorted(s.Verbs), s.AcceptedTypes))
					}
					sort.Strings(subs)
					add(g.Name, "aggregated "+gv+" "+r.Resource, fmt.Sprintf(
						"kind=%s scope=%s singular=%s verbs=%v short=%v categories=%v subresources=%v",
						gvkString(r.ResponseKind), r.Scope, r.SingularResource, sorted(r.Verbs), r.ShortNames, r.Categories, subs))
				}
			}
			add(g.Name, "aggregated "+p+" group "+g.Name, fmt.Sprintf("versions=%v", vs))
		}
	}
	return facts, group, nil
}

func gvkString(k *metav1.GroupVersionKind) string {
	if k == nil {
		return "<nil>"
	}
	return k.Group + "/" + k.Version + "/" + k.Kind
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// diffFacts lists every fact that differs, sorted; allowed are differences
// in allowlisted groups.
func diffFacts(up, sk, groupUp, groupSk map[string]string) (diffs, allowed []string) {
	keys := map[string]bool{}
	for k := range up {
		keys[k] = true
	}
	for k := range sk {
		keys[k] = true
	}
	for k := range keys {
		u, inU := up[k]
		s, inS := sk[k]
		var d string
		switch {
		case !inS:
			d = fmt.Sprintf("missing in skiff: %s: %s", k, u)
		case !inU:
			d = fmt.Sprintf("extra in skiff:   %s: %s", k, s)
		case u != s:
			d = fmt.Sprintf("differs:          %s:\n    upstream: %s\n    skiff:    %s", k, u, s)
		default:
			continue
		}
		g := groupUp[k]
		if !inU {
			g = groupSk[k]
		}
		if _, ok := discoveryAllowlist[g]; ok {
			allowed = append(allowed, d)
		} else {
			diffs = append(diffs, d)
		}
	}
	sort.Strings(diffs)
	sort.Strings(allowed)
	return diffs, allowed
}

// testDiscovery fails listing every discovery fact that differs outside
// the allowlisted groups.
func testDiscovery(t *testing.T, up, sk *endpoint, rep *reporter) {
	fu, gu, err := discoveryFacts(up)
	if err != nil {
		t.Fatal(err)
	}
	fs, gs, err := discoveryFacts(sk)
	if err != nil {
		t.Fatal(err)
	}
	diffs, allowed := diffFacts(fu, fs, gu, gs)
	t.Logf("discovery: %d facts upstream, %d skiff; %d differ, %d more in allowlisted groups %v",
		len(fu), len(fs), len(diffs), len(allowed), slices.Sorted(maps.Keys(discoveryAllowlist)))
	rep.section("discovery", len(fu), len(allowed), diffs)
	if len(diffs) > 0 {
		t.Errorf("%d discovery differences:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}
