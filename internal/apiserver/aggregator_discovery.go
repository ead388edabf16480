package apiserver

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// remoteDiscovery caches /apis with the groups that only extension
// servers serve merged in. It is rebuilt when the APIServices, their last
// discovery documents or the local documents change.
type remoteDiscovery struct {
	mu               sync.Mutex
	gen              int64
	base, baseAggr   []byte // the local documents it was built from
	groups, aggr     []byte
	groupDocs        map[string][]byte
	builtWithRemotes bool
}

// remoteGroup is a group served only through APIServices, its versions by
// priority (highest first).
type remoteGroup struct {
	name     string
	versions []*remoteAPI
}

// remoteGroups lists the groups of remote APIs that nothing local serves,
// in upstream's order: by group priority, highest first, then by name.
func (s *Server) remoteGroups() []remoteGroup {
	byGroup := map[string][]*remoteAPI{}
	for gv, r := range s.agg.snapshot() {
		if s.servesGroupLocally(gv.Group) {
			continue
		}
		byGroup[gv.Group] = append(byGroup[gv.Group], r)
	}
	out := make([]remoteGroup, 0, len(byGroup))
	for g, rs := range byGroup {
		sort.Slice(rs, func(i, j int) bool {
			a, b := rs[i].svc.Spec, rs[j].svc.Spec
			if a.VersionPriority != b.VersionPriority {
				return a.VersionPriority > b.VersionPriority
			}
			return version.CompareKubeAwareVersionStrings(a.Version, b.Version) > 0
		})
		out = append(out, remoteGroup{name: g, versions: rs})
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := out[i].versions[0].svc.Spec.GroupPriorityMinimum, out[j].versions[0].svc.Spec.GroupPriorityMinimum
		if pi != pj {
			return pi > pj
		}
		return out[i].name < out[j].name
	})
	return out
}

// discoveryWithRemotes returns /apis (legacy and aggregated) and the
// group documents of remote-only groups.
func (s *Server) discoveryWithRemotes(base, baseAggr []byte) (groups, aggr []byte, groupDocs map[string][]byte) {
	rd := &s.agg.disc
	gen := s.agg.generation()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.builtWithRemotes && rd.gen == gen && sameBytes(rd.base, base) && sameBytes(rd.baseAggr, baseAggr) {
		return rd.groups, rd.aggr, rd.groupDocs
	}
	groups, aggr, groupDocs = base, baseAggr, nil
	if remotes := s.remoteGroups(); len(remotes) > 0 {
		var err error
		if groups, aggr, groupDocs, err = mergeRemoteGroups(base, baseAggr, remotes); err != nil {
			s.log.Warn("merge aggregated discovery", "err", err)
			groups, aggr, groupDocs = base, baseAggr, nil
		}
	}
	rd.gen, rd.base, rd.baseAggr, rd.builtWithRemotes = gen, base, baseAggr, true
	rd.groups, rd.aggr, rd.groupDocs = groups, aggr, groupDocs
	return groups, aggr, groupDocs
}

// sameBytes reports whether a and b are the same slice (not just equal):
// the local documents are replaced, never modified.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func mergeRemoteGroups(base, baseAggr []byte, remotes []remoteGroup) (groups, aggr []byte, groupDocs map[string][]byte, err error) {
	var list metav1.APIGroupList
	if err := json.Unmarshal(base, &list); err != nil {
		return nil, nil, nil, err
	}
	var aggrList apidiscoveryv2.APIGroupDiscoveryList
	if err := json.Unmarshal(baseAggr, &aggrList); err != nil {
		return nil, nil, nil, err
	}
	groupDocs = map[string][]byte{}
	for _, g := range remotes {
		group := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g.name}
		ad := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.name}}
		for _, r := range g.versions {
			gv := schema.GroupVersion{Group: g.name, Version: r.svc.Spec.Version}
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version})
			ad.Versions = append(ad.Versions, remoteVersionDiscovery(gv, r.resources.Load()))
		}
		group.PreferredVersion = group.Versions[0]
		if groupDocs[g.name], err = json.Marshal(group); err != nil {
			return nil, nil, nil, err
		}
		list.Groups = append(list.Groups, group)
		aggrList.Items = append(aggrList.Items, ad)
	}
	if groups, err = json.Marshal(list); err != nil {
		return nil, nil, nil, err
	}
	if aggr, err = json.Marshal(aggrList); err != nil {
		return nil, nil, nil, err
	}
	return groups, aggr, groupDocs, nil
}

// remoteVersionDiscovery converts an extension server's group-version
// document into the aggregated form; without one yet, the version is
// listed as stale, as upstream does for a server it cannot reach.
func remoteVersionDiscovery(gv schema.GroupVersion, list *metav1.APIResourceList) apidiscoveryv2.APIVersionDiscovery {
	v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	if list == nil {
		v.Freshness = apidiscoveryv2.DiscoveryFreshnessStale
		return v
	}
	parents := map[string]int{}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		parents[r.Name] = len(v.Resources)
		v.Resources = append(v.Resources, apidiscoveryv2.APIResourceDiscovery{
			Resource: r.Name, ResponseKind: responseKind(gv, r), Scope: scope, SingularResource: r.SingularName,
			Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
		})
	}
	for _, r := range list.APIResources {
		parent, sub, ok := strings.Cut(r.Name, "/")
		i, known := parents[parent]
		if !ok || !known {
			continue
		}
		v.Resources[i].Subresources = append(v.Resources[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource: sub, ResponseKind: responseKind(gv, r), Verbs: r.Verbs,
		})
	}
	return v
}

func responseKind(gv schema.GroupVersion, r metav1.APIResource) *metav1.GroupVersionKind {
	k := &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind}
	if r.Group != "" || r.Version != "" {
		k.Group, k.Version = r.Group, r.Version
	}
	return k
}

// remoteGroupDoc is /apis/<group> of a group only extension servers serve.
func (s *Server) remoteGroupDoc(group string) ([]byte, bool) {
	groups, aggr := s.discovery.groups, s.discovery.groupsAggr
	if c := s.customResources().disc; c != nil {
		groups, aggr = c.groups, c.groupsAggr
	}
	_, _, docs := s.discoveryWithRemotes(groups, aggr)
	b, ok := docs[group]
	return b, ok
}
