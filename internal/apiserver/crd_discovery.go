package apiserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"sort"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// discoveryDocs are the discovery documents with custom groups merged in.
// groupDocs and resourceLists hold the custom groups only; the built-in
// ones stay in discovery.
type discoveryDocs struct {
	groups        []byte
	groupsAggr    []byte
	groupDocs     map[string][]byte
	resourceLists map[schema.GroupVersion][]byte
}

// verbsCustom are the verbs of a custom resource in upstream's order.
var verbsCustom = metav1.Verbs{"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"}

var verbsSubresource = metav1.Verbs{"get", "patch", "update"}

// storageVersionHash is upstream's opaque hash of a resource's storage
// version, which clients use to notice storage migrations.
func storageVersionHash(group, version, kind string) string {
	sum := sha256.Sum256([]byte(group + "/" + version + "/" + kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// sortVersions orders versions as upstream's discovery does for custom
// resources: kube-aware, GA before beta before alpha, newest first.
func sortVersions(vs []string) {
	sort.SliceStable(vs, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(vs[i], vs[j]) > 0 })
}

// buildCustomDiscovery merges the served custom resources into the
// built-in discovery documents. Custom groups come after the built-in
// ones (upstream gives them a lower group priority), by name, before the
// metrics.k8s.io group an aggregated server adds with a lower one still.
func (d *discovery) buildCustomDiscovery(rs []*resource) (*discoveryDocs, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	byGV := map[schema.GroupVersion][]*resource{}
	versions := map[string][]string{}
	for _, r := range rs {
		gv := r.GVR.GroupVersion()
		if _, builtin := d.groupDocs[gv.Group]; builtin {
			continue // a CRD in a built-in group is routed but not listed
		}
		if len(byGV[gv]) == 0 {
			versions[gv.Group] = append(versions[gv.Group], gv.Version)
		}
		byGV[gv] = append(byGV[gv], r)
	}
	groupNames := make([]string, 0, len(versions))
	for g := range versions {
		groupNames = append(groupNames, g)
	}
	sort.Strings(groupNames)

	docs := &discoveryDocs{groupDocs: map[string][]byte{}, resourceLists: map[schema.GroupVersion][]byte{}}
	var groups []metav1.APIGroup
	var aggr []apidiscoveryv2.APIGroupDiscovery
	var err error
	for _, g := range groupNames {
		vs := versions[g]
		sortVersions(vs)
		group := metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: g}
		ad := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g}}
		for _, v := range vs {
			gv := schema.GroupVersion{Group: g, Version: v}
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: v})
			if docs.resourceLists[gv], err = json.Marshal(customResourceList(gv, byGV[gv])); err != nil {
				return nil, err
			}
			ad.Versions = append(ad.Versions, customVersionDiscovery(gv, byGV[gv]))
		}
		group.PreferredVersion = group.Versions[0]
		if docs.groupDocs[g], err = json.Marshal(group); err != nil {
			return nil, err
		}
		groups = append(groups, group)
		aggr = append(aggr, ad)
	}

	groupList := d.groupList
	groupList.Groups = insertBeforeMetrics(d.groupList.Groups, groups, func(g metav1.APIGroup) string { return g.Name })
	aggrList := d.aggr
	aggrList.Items = insertBeforeMetrics(d.aggr.Items, aggr, func(g apidiscoveryv2.APIGroupDiscovery) string { return g.Name })
	if docs.groups, err = json.Marshal(groupList); err != nil {
		return nil, err
	}
	if docs.groupsAggr, err = json.Marshal(aggrList); err != nil {
		return nil, err
	}
	return docs, nil
}

// insertBeforeMetrics returns builtin with custom inserted before the
// metrics.k8s.io group (or at the end).
func insertBeforeMetrics[T any](builtin, custom []T, name func(T) string) []T {
	i := slices.IndexFunc(builtin, func(t T) bool { return name(t) == metricsGV.Group })
	if i < 0 {
		i = len(builtin)
	}
	out := make([]T, 0, len(builtin)+len(custom))
	out = append(out, builtin[:i]...)
	out = append(out, custom...)
	return append(out, builtin[i:]...)
}

func customResourceList(gv schema.GroupVersion, rs []*resource) *metav1.APIResourceList {
	l := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, r := range rs {
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: r.GVR.Resource, SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: verbsCustom, ShortNames: r.ShortNames, Categories: r.Categories,
			StorageVersionHash: storageVersionHash(gv.Group, storageVersion(r.custom.crd), r.custom.crd.Spec.Names.Kind),
		})
		if r.HasSubresource("status") {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: r.GVR.Resource + "/status", Namespaced: r.Namespaced, Kind: r.Kind, Verbs: verbsSubresource,
			})
		}
		if r.HasSubresource("scale") {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: r.GVR.Resource + "/scale", Namespaced: r.Namespaced, Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: verbsSubresource,
			})
		}
	}
	sort.SliceStable(l.APIResources, func(i, j int) bool { return l.APIResources[i].Name < l.APIResources[j].Name })
	return l
}

func customVersionDiscovery(gv schema.GroupVersion, rs []*resource) apidiscoveryv2.APIVersionDiscovery {
	v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	for _, r := range rs {
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		kind := &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind}
		rd := apidiscoveryv2.APIResourceDiscovery{
			Resource: r.GVR.Resource, ResponseKind: kind, Scope: scope, SingularResource: r.SingularName,
			Verbs: verbsCustom, ShortNames: r.ShortNames, Categories: r.Categories,
		}
		if r.HasSubresource("status") {
			rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource: "status", ResponseKind: kind, Verbs: verbsSubresource})
		}
		if r.HasSubresource("scale") {
			rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource: "scale", ResponseKind: &metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, Verbs: verbsSubresource})
		}
		v.Resources = append(v.Resources, rd)
	}
	sort.SliceStable(v.Resources, func(i, j int) bool { return v.Resources[i].Resource < v.Resources[j].Resource })
	return v
}

// errCustomTerminating is upstream's 405 for a create while the CRD is
// being deleted.
func errCustomTerminating(r *resource) error {
	err := apierrors.NewMethodNotSupported(r.gr, "create")
	err.ErrStatus.Message = "create not allowed while custom resource definition is terminating"
	err.ErrStatus.Code = http.StatusMethodNotAllowed
	return err
}
