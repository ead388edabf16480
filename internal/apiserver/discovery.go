package apiserver

import (
	"encoding/json"
	"net/http"
	"runtime"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-dev/skiff/internal/apis"
)

// discoveryMedia is the Content-Type of aggregated discovery responses;
// client-go checks it to tell aggregated from legacy discovery.
const discoveryMedia = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

var verbsAll = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// discovery holds the discovery documents, built once: they only change
// when the set of resources does.
type discovery struct {
	version       []byte
	coreVersions  []byte            // /api
	groups        []byte            // /apis
	coreAggr      []byte            // /api as APIGroupDiscoveryList
	groupsAggr    []byte            // /apis as APIGroupDiscoveryList
	groupDocs     map[string][]byte // /apis/<group>
	resourceLists map[schema.GroupVersion][]byte
	// groupList and aggr are /apis in structured form, for merging in the
	// groups of custom resources (crd_discovery.go).
	groupList metav1.APIGroupList
	aggr      apidiscoveryv2.APIGroupDiscoveryList
}

func newDiscovery(reg *apis.Registry, resources []*apis.Resource, gitVersion string) (*discovery, error) {
	d := &discovery{groupDocs: map[string][]byte{}, resourceLists: map[schema.GroupVersion][]byte{}}
	byGV := map[schema.GroupVersion][]*apis.Resource{}
	for _, r := range resources {
		gv := r.GVR.GroupVersion()
		byGV[gv] = append(byGV[gv], r)
	}
	major, minor := "1", ""
	if v := strings.TrimPrefix(gitVersion, "v"); v != "" {
		parts := strings.SplitN(v, ".", 3)
		if len(parts) >= 2 {
			major, minor = parts[0], parts[1]
		}
	}
	var err error
	if d.version, err = json.Marshal(version.Info{
		Major: major, Minor: minor, GitVersion: gitVersion, GitCommit: "", GitTreeState: "clean",
		BuildDate: "", GoVersion: runtime.Version(), Compiler: runtime.Compiler,
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}); err != nil {
		return nil, err
	}

	var groupList metav1.APIGroupList
	groupList.Kind, groupList.APIVersion = "APIGroupList", "v1"
	core := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	aggr := core
	for _, gv := range reg.GroupVersions() {
		rs := byGV[gv]
		if d.resourceLists[gv], err = json.Marshal(resourceList(gv, rs)); err != nil {
			return nil, err
		}
		disc := apidiscoveryv2.APIGroupDiscovery{
			ObjectMeta: metav1.ObjectMeta{Name: gv.Group},
			Versions:   []apidiscoveryv2.APIVersionDiscovery{versionDiscovery(gv, rs)},
		}
		if gv.Group == "" {
			core.Items = append(core.Items, disc)
			continue
		}
		gvd := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		// A group's versions come together, the preferred first (Registry
		// orders them): later ones join the group's documents.
		if n := len(groupList.Groups); n > 0 && groupList.Groups[n-1].Name == gv.Group {
			g := &groupList.Groups[n-1]
			g.Versions = append(g.Versions, gvd)
			last := &aggr.Items[len(aggr.Items)-1]
			last.Versions = append(last.Versions, disc.Versions...)
			if d.groupDocs[gv.Group], err = json.Marshal(g); err != nil {
				return nil, err
			}
			continue
		}
		aggr.Items = append(aggr.Items, disc)
		g := metav1.APIGroup{
			TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
			Name:             gv.Group,
			Versions:         []metav1.GroupVersionForDiscovery{gvd},
			PreferredVersion: gvd,
		}
		groupList.Groups = append(groupList.Groups, g)
		if d.groupDocs[gv.Group], err = json.Marshal(g); err != nil {
			return nil, err
		}
	}
	// metrics.k8s.io is served from the kubelets' stats, not from storage.
	metricsList := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: metricsGV.String(),
		APIResources: []metav1.APIResource{
			{Name: "nodes", SingularName: "", Namespaced: false, Kind: "NodeMetrics", Verbs: metav1.Verbs{"get", "list"}},
			{Name: "pods", SingularName: "", Namespaced: true, Kind: "PodMetrics", Verbs: metav1.Verbs{"get", "list"}},
		},
	}
	if d.resourceLists[metricsGV], err = json.Marshal(metricsList); err != nil {
		return nil, err
	}
	metricsVersion := metav1.GroupVersionForDiscovery{GroupVersion: metricsGV.String(), Version: metricsGV.Version}
	metricsGroup := metav1.APIGroup{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}, Name: metricsGV.Group,
		Versions: []metav1.GroupVersionForDiscovery{metricsVersion}, PreferredVersion: metricsVersion,
	}
	groupList.Groups = append(groupList.Groups, metricsGroup)
	if d.groupDocs[metricsGV.Group], err = json.Marshal(metricsGroup); err != nil {
		return nil, err
	}
	metricsDisc := apidiscoveryv2.APIVersionDiscovery{Version: metricsGV.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	for _, ar := range metricsList.APIResources {
		scope := apidiscoveryv2.ScopeCluster
		if ar.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		metricsDisc.Resources = append(metricsDisc.Resources, apidiscoveryv2.APIResourceDiscovery{
			Resource: ar.Name, Scope: scope, Verbs: ar.Verbs,
			ResponseKind: &metav1.GroupVersionKind{Group: metricsGV.Group, Version: metricsGV.Version, Kind: ar.Kind},
		})
	}
	aggr.Items = append(aggr.Items, apidiscoveryv2.APIGroupDiscovery{
		ObjectMeta: metav1.ObjectMeta{Name: metricsGV.Group}, Versions: []apidiscoveryv2.APIVersionDiscovery{metricsDisc},
	})
	if d.groups, err = json.Marshal(groupList); err != nil {
		return nil, err
	}
	d.groupList, d.aggr = groupList, aggr
	if d.coreAggr, err = json.Marshal(core); err != nil {
		return nil, err
	}
	if d.groupsAggr, err = json.Marshal(aggr); err != nil {
		return nil, err
	}
	d.coreVersions, err = json.Marshal(metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
			{ClientCIDR: "0.0.0.0/0", ServerAddress: ""},
		},
	})
	return d, err
}

// verbsNamespaces are the verbs of namespaces: upstream serves no
// deletecollection for them.
var verbsNamespaces = metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}

// resourceVerbs are the verbs a resource answers; the router refuses the
// others with 405.
func resourceVerbs(r *apis.Resource) metav1.Verbs {
	switch {
	case r.Verbs != nil:
		return r.Verbs
	case r.CreateOnly:
		return metav1.Verbs{"create"}
	case r.GVR.Group == "" && r.GVR.Resource == "namespaces":
		return verbsNamespaces
	}
	return verbsAll
}

func subresourceVerbs(sub string) metav1.Verbs {
	switch sub {
	case "binding", "eviction", "token":
		return metav1.Verbs{"create"}
	case "finalize":
		return metav1.Verbs{"update"}
	case "log":
		return metav1.Verbs{"get"}
	case "exec", "attach", "portforward":
		return metav1.Verbs{"create", "get"}
	case "proxy":
		return metav1.Verbs{"create", "delete", "get", "patch", "update"}
	}
	return metav1.Verbs{"get", "patch", "update"}
}

// discoverySubresources adds the connect subresources (served by nodes) to
// a resource's stored ones.
func discoverySubresources(r *apis.Resource) []string {
	subs := append([]string{}, r.Subresources...)
	if r.GVR.Group == "" {
		for sub := range connectSubresources[r.GVR.Resource] {
			subs = append(subs, sub)
		}
	}
	sort.Strings(subs)
	return subs
}

func resourceList(gv schema.GroupVersion, rs []*apis.Resource) *metav1.APIResourceList {
	l := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(),
	}
	for _, r := range rs {
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: r.GVR.Resource, SingularName: r.SingularName, Namespaced: r.Namespaced,
			Kind: r.Kind, Verbs: resourceVerbs(r), ShortNames: r.ShortNames, Categories: r.Categories,
		})
		for _, sub := range discoverySubresources(r) {
			ar := metav1.APIResource{
				Name: r.GVR.Resource + "/" + sub, Namespaced: r.Namespaced, Kind: r.Kind,
				Verbs: subresourceVerbs(sub),
			}
			switch sub {
			case "scale":
				ar.Group, ar.Version, ar.Kind = "autoscaling", "v1", "Scale"
			case "binding":
				ar.Kind = "Binding"
			case "eviction":
				ar.Group, ar.Version, ar.Kind = "policy", "v1", "Eviction"
			case "token":
				ar.Group, ar.Version, ar.Kind = "authentication.k8s.io", "v1", "TokenRequest"
			case "exec", "attach", "portforward":
				ar.Kind = "Pod" + connectOptionsKind[sub]
			case "log", "proxy":
				ar.Kind = map[string]string{"log": "Pod", "proxy": r.Kind + "ProxyOptions"}[sub]
			}
			l.APIResources = append(l.APIResources, ar)
		}
	}
	sort.SliceStable(l.APIResources, func(i, j int) bool { return l.APIResources[i].Name < l.APIResources[j].Name })
	return l
}

// connectOptionsKind completes the kind ("Pod" + it) of a pod's streaming
// subresources.
var connectOptionsKind = map[string]string{"exec": "ExecOptions", "attach": "AttachOptions", "portforward": "PortForwardOptions"}

func versionDiscovery(gv schema.GroupVersion, rs []*apis.Resource) apidiscoveryv2.APIVersionDiscovery {
	v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	for _, r := range rs {
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		rd := apidiscoveryv2.APIResourceDiscovery{
			Resource: r.GVR.Resource,
			// Upstream names only the kind of a resource's own objects:
			// group and version are the document's.
			ResponseKind:     &metav1.GroupVersionKind{Kind: r.Kind},
			Scope:            scope,
			SingularResource: r.SingularName,
			Verbs:            resourceVerbs(r),
			ShortNames:       r.ShortNames,
			Categories:       r.Categories,
		}
		for _, sub := range discoverySubresources(r) {
			sd := apidiscoveryv2.APISubresourceDiscovery{
				Subresource:  sub,
				ResponseKind: &metav1.GroupVersionKind{Kind: r.Kind},
				Verbs:        subresourceVerbs(sub),
			}
			switch sub {
			case "scale":
				sd.ResponseKind = &metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
			case "binding":
				sd.ResponseKind = &metav1.GroupVersionKind{Kind: "Binding"}
			case "eviction":
				sd.ResponseKind = &metav1.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}
			case "token":
				sd.ResponseKind = &metav1.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}
			case "log":
				sd.ResponseKind = &metav1.GroupVersionKind{Kind: "Pod"}
			case "exec", "attach", "portforward":
				sd.ResponseKind = &metav1.GroupVersionKind{Kind: "Pod" + connectOptionsKind[sub]}
			case "proxy":
				sd.ResponseKind = &metav1.GroupVersionKind{Kind: r.Kind + "ProxyOptions"}
			}
			rd.Subresources = append(rd.Subresources, sd)
		}
		v.Resources = append(v.Resources, rd)
	}
	sort.SliceStable(v.Resources, func(i, j int) bool { return v.Resources[i].Resource < v.Resources[j].Resource })
	return v
}

func (d *discovery) serveVersion(w http.ResponseWriter, r *http.Request, s *Server) {
	writeRaw(w, http.StatusOK, d.version)
}

func wantsAggregated(r *http.Request) bool {
	a, err := negotiate(r)
	return err == nil && a.discovery
}

func writeAggregated(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", discoveryMedia)
	w.Header().Set("Vary", "Accept")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (d *discovery) serveAPI(w http.ResponseWriter, r *http.Request, s *Server) {
	if wantsAggregated(r) {
		writeAggregated(w, d.coreAggr)
		return
	}
	w.Header().Set("Vary", "Accept")
	writeRaw(w, http.StatusOK, d.coreVersions)
}

func (d *discovery) serveAPIs(w http.ResponseWriter, r *http.Request, s *Server) {
	groups, groupsAggr := d.groups, d.groupsAggr
	if c := s.customResources().disc; c != nil {
		groups, groupsAggr = c.groups, c.groupsAggr
	}
	groups, groupsAggr, _ = s.discoveryWithRemotes(groups, groupsAggr)
	if wantsAggregated(r) {
		writeAggregated(w, groupsAggr)
		return
	}
	w.Header().Set("Vary", "Accept")
	writeRaw(w, http.StatusOK, groups)
}

// serveGroupOrVersion answers /apis/<group>, /apis/<group>/<version> and
// /api/v1.
func (d *discovery) serveGroupOrVersion(w http.ResponseWriter, r *http.Request, s *Server, gv schema.GroupVersion) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, errMethodNotAllowed())
		return
	}
	if c := s.customResources().disc; c != nil {
		b, ok := c.groupDocs[gv.Group]
		if gv.Version != "" {
			b, ok = c.resourceLists[gv]
		}
		if ok {
			writeRaw(w, http.StatusOK, b)
			return
		}
	}
	if gv.Version == "" {
		if b, ok := d.groupDocs[gv.Group]; ok {
			writeRaw(w, http.StatusOK, b)
			return
		}
		if b, ok := s.remoteGroupDoc(gv.Group); ok {
			writeRaw(w, http.StatusOK, b)
			return
		}
	} else if b, ok := d.resourceLists[gv]; ok {
		writeRaw(w, http.StatusOK, b)
		return
	}
	s.writeError(w, r, errNoRoute())
}

// servesGroup reports whether group (the core group is "") is served,
// built in, custom or by an extension server; paths under any other group
// are upstream's plain-text 404.
func (s *Server) servesGroup(group string) bool {
	if s.servesGroupLocally(group) {
		return true
	}
	_, ok := s.remoteGroupDoc(group)
	return ok
}

// servesGroupLocally reports whether this server serves group itself.
func (s *Server) servesGroupLocally(group string) bool {
	if group == "" {
		return true
	}
	if _, ok := s.discovery.groupDocs[group]; ok {
		return true
	}
	if c := s.customResources().disc; c != nil {
		_, ok := c.groupDocs[group]
		return ok
	}
	return false
}
