package flowcontrol

import (
	"slices"
	"strings"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Request is what classification looks at, as upstream's request info and
// user info.
type Request struct {
	User   string
	Groups []string
	// ResourceRequest is false for non-resource URLs (/version, /healthz).
	ResourceRequest bool
	// Verb is the API verb (get, list, watch, create, ...) of a resource
	// request, or the lower-case HTTP method of a non-resource one.
	Verb        string
	APIGroup    string
	Resource    string
	Subresource string
	Namespace   string
	Path        string
	// Seats is the request's work estimate (ListSeats for a LIST); less
	// than one means one.
	Seats int
	// Watchers, for a write, counts the watches its event will reach: the
	// request then holds more seats, and keeps them a little after it ends
	// (upstream's mutating work estimate).
	Watchers int
}

// saUserPrefix starts the user name of every ServiceAccount token.
const saUserPrefix = "system:serviceaccount:"

// strSet matches a value against a rule's list, where "*" matches all.
type strSet struct {
	all   bool
	items []string
}

func newStrSet(items []string, wildcard string) strSet {
	if slices.Contains(items, wildcard) {
		return strSet{all: true}
	}
	return strSet{items: slices.Clone(items)}
}

func (s strSet) has(v string) bool { return s.all || slices.Contains(s.items, v) }

type subjectMatcher struct {
	kind flowcontrolv1.SubjectKind
	name string // user or group name, or ServiceAccount name
	// saPrefix is "system:serviceaccount:NS:" for ServiceAccount subjects.
	saPrefix string
}

func (m *subjectMatcher) matches(r *Request) bool {
	switch m.kind {
	case flowcontrolv1.SubjectKindUser:
		return m.name == flowcontrolv1.NameAll || m.name == r.User
	case flowcontrolv1.SubjectKindGroup:
		return m.name == flowcontrolv1.NameAll || slices.Contains(r.Groups, m.name)
	case flowcontrolv1.SubjectKindServiceAccount:
		if !strings.HasPrefix(r.User, m.saPrefix) {
			return false
		}
		rest := r.User[len(m.saPrefix):]
		return (m.name == flowcontrolv1.NameAll && rest != "" && !strings.Contains(rest, ":")) || rest == m.name
	}
	return false
}

type resourceRule struct {
	verbs, groups, resources, namespaces strSet
	clusterScope                         bool
}

func (m *resourceRule) matches(r *Request, resource string) bool {
	if !m.verbs.has(r.Verb) || !m.groups.has(r.APIGroup) || !m.resources.has(resource) {
		return false
	}
	if r.Namespace == "" {
		return m.clusterScope
	}
	return m.namespaces.has(r.Namespace)
}

type nonResourceRule struct {
	verbs strSet
	urls  []string
}

func (m *nonResourceRule) matches(r *Request) bool {
	if !m.verbs.has(r.Verb) {
		return false
	}
	for _, u := range m.urls {
		switch {
		case u == flowcontrolv1.NonResourceAll || u == r.Path:
			return true
		case strings.HasSuffix(u, "/*") && strings.HasPrefix(r.Path, u[:len(u)-1]):
			return true
		}
	}
	return false
}

type ruleSet struct {
	subjects    []subjectMatcher
	resources   []resourceRule
	nonResource []nonResourceRule
}

func (rs *ruleSet) matches(r *Request, resource string) bool {
	subject := false
	for i := range rs.subjects {
		if rs.subjects[i].matches(r) {
			subject = true
			break
		}
	}
	if !subject {
		return false
	}
	if r.ResourceRequest {
		for i := range rs.resources {
			if rs.resources[i].matches(r, resource) {
				return true
			}
		}
		return false
	}
	for i := range rs.nonResource {
		if rs.nonResource[i].matches(r) {
			return true
		}
	}
	return false
}

type distinguisher uint8

const (
	byNothing distinguisher = iota
	byUser
	byNamespace
)

// schemaMatcher is a FlowSchema compiled for classification.
type schemaMatcher struct {
	name       string
	uid        types.UID
	precedence int32
	method     distinguisher
	rules      []ruleSet
	level      *priorityLevel
	levelUID   types.UID // of the level's object when this was compiled
	metrics    *schemaMetrics
}

func compileSchema(fs *flowcontrolv1.FlowSchema) *schemaMatcher {
	m := &schemaMatcher{name: fs.Name, uid: fs.UID, precedence: fs.Spec.MatchingPrecedence}
	if d := fs.Spec.DistinguisherMethod; d != nil {
		switch d.Type {
		case flowcontrolv1.FlowDistinguisherMethodByUserType:
			m.method = byUser
		case flowcontrolv1.FlowDistinguisherMethodByNamespaceType:
			m.method = byNamespace
		}
	}
	for _, rule := range fs.Spec.Rules {
		var rs ruleSet
		for _, s := range rule.Subjects {
			sm := subjectMatcher{kind: s.Kind}
			switch {
			case s.Kind == flowcontrolv1.SubjectKindUser && s.User != nil:
				sm.name = s.User.Name
			case s.Kind == flowcontrolv1.SubjectKindGroup && s.Group != nil:
				sm.name = s.Group.Name
			case s.Kind == flowcontrolv1.SubjectKindServiceAccount && s.ServiceAccount != nil:
				sm.name = s.ServiceAccount.Name
				sm.saPrefix = saUserPrefix + s.ServiceAccount.Namespace + ":"
			default:
				continue
			}
			rs.subjects = append(rs.subjects, sm)
		}
		for _, r := range rule.ResourceRules {
			rs.resources = append(rs.resources, resourceRule{
				verbs:        newStrSet(r.Verbs, flowcontrolv1.VerbAll),
				groups:       newStrSet(r.APIGroups, flowcontrolv1.APIGroupAll),
				resources:    newStrSet(r.Resources, flowcontrolv1.ResourceAll),
				namespaces:   newStrSet(r.Namespaces, flowcontrolv1.NamespaceEvery),
				clusterScope: r.ClusterScope,
			})
		}
		for _, r := range rule.NonResourceRules {
			rs.nonResource = append(rs.nonResource, nonResourceRule{
				verbs: newStrSet(r.Verbs, flowcontrolv1.VerbAll), urls: slices.Clone(r.NonResourceURLs),
			})
		}
		m.rules = append(m.rules, rs)
	}
	return m
}

func (m *schemaMatcher) matches(r *Request, resource string) bool {
	for i := range m.rules {
		if m.rules[i].matches(r, resource) {
			return true
		}
	}
	return false
}

// flowDistinguisher is the part of a request that, with the schema's
// name, identifies its flow.
func (m *schemaMatcher) flowDistinguisher(r *Request) string {
	switch m.method {
	case byUser:
		return r.User
	case byNamespace:
		return r.Namespace
	}
	return ""
}

// classify returns the first schema, in matching order, whose rules match r,
// or the catch-all when none does.
func (c *config) classify(r *Request) *schemaMatcher {
	resource := r.Resource
	if r.Subresource != "" {
		// Rules name subresources as "pods/status"; only requests for one
		// pay for the concatenation.
		resource = r.Resource + "/" + r.Subresource
	}
	for _, m := range c.schemas {
		if m.matches(r, resource) {
			return m
		}
	}
	return c.catchAll
}

// flowHash identifies a flow (schema name and distinguisher) for shuffle
// sharding: FNV-1a without allocating.
func flowHash(schema, distinguisher string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(schema); i++ {
		h = (h ^ uint64(schema[i])) * prime
	}
	h = (h ^ 0xff) * prime // separator: no byte of a name is 0xff
	for i := 0; i < len(distinguisher); i++ {
		h = (h ^ uint64(distinguisher[i])) * prime
	}
	return h
}
