package flowcontrol

import (
	"context"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

// The expectations follow upstream's documented defaults (the priority and
// fairness concept page and the bootstrap configuration).
func TestClassifyDefaultConfiguration(t *testing.T) {
	c := New(Options{})
	node := func(verb, group, resource, sub, ns string) Request {
		return Request{User: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}, ResourceRequest: true,
			Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns}
	}
	user := func(name string, groups []string, verb, group, resource, ns string) Request {
		return Request{User: name, Groups: groups, ResourceRequest: true, Verb: verb, APIGroup: group, Resource: resource, Namespace: ns}
	}
	authd := []string{"system:authenticated"}
	sa := func(ns, name string) (string, []string) {
		return "system:serviceaccount:" + ns + ":" + name, []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	rsName, rsGroups := sa("kube-system", "replicaset-controller")
	appName, appGroups := sa("default", "app")
	tests := []struct {
		name       string
		req        Request
		schema, pl string
	}{
		{"system:masters is exempt", user("admin", []string{"system:masters", "system:authenticated"}, "delete", "apps", "deployments", "default"), "exempt", "exempt"},
		{"node status", node("patch", "", "nodes", "status", ""), "system-node-high", "node-high"},
		{"node lease", node("update", "coordination.k8s.io", "leases", "", "kube-node-lease"), "system-node-high", "node-high"},
		{"node reads pods", node("list", "", "pods", "", ""), "system-nodes", "system"},
		{"node reads a secret", node("get", "", "secrets", "", "default"), "system-nodes", "system"},
		{"scheduler binds", user("system:kube-scheduler", authd, "create", "", "pods", "default"), "kube-scheduler", "workload-high"},
		{"scheduler lease", user("system:kube-scheduler", authd, "update", "coordination.k8s.io", "leases", "kube-system"), "system-leader-election", "leader-election"},
		{"scheduler lease watch is not leader election", user("system:kube-scheduler", authd, "watch", "coordination.k8s.io", "leases", "kube-system"), "kube-scheduler", "workload-high"},
		{"controller manager", user("system:kube-controller-manager", authd, "list", "apps", "replicasets", ""), "kube-controller-manager", "workload-high"},
		{"kube-system service account", user(rsName, rsGroups, "update", "apps", "replicasets", "default"), "kube-system-service-accounts", "workload-high"},
		{"kube-system service account lease", user(rsName, rsGroups, "get", "coordination.k8s.io", "leases", "kube-system"), "system-leader-election", "leader-election"},
		{"other service account", user(appName, appGroups, "list", "", "configmaps", "default"), "service-accounts", "workload-low"},
		{"plain user", user("alice", authd, "create", "", "configmaps", "default"), "global-default", "global-default"},
		{"anonymous", user("system:anonymous", []string{"system:unauthenticated"}, "get", "", "namespaces", "x"), "global-default", "global-default"},
		{"health probe", Request{User: "system:anonymous", Groups: []string{"system:unauthenticated"}, Verb: "get", Path: "/readyz"}, "probes", "exempt"},
		{"non-resource version", Request{User: "alice", Groups: authd, Verb: "get", Path: "/version"}, "global-default", "global-default"},
		{"no groups at all", user("nobody", nil, "get", "", "pods", "default"), "catch-all", "catch-all"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := c.Classify(&tc.req)
			if got.FlowSchema != tc.schema || got.PriorityLevel != tc.pl {
				t.Fatalf("classified as %s/%s, want %s/%s", got.FlowSchema, got.PriorityLevel, tc.schema, tc.pl)
			}
			if got.Exempt != (tc.pl == "exempt") {
				t.Fatalf("exempt = %v", got.Exempt)
			}
		})
	}
}

func TestClassifyCustomSchemas(t *testing.T) {
	b := DefaultBootstrap()
	var fss []*flowcontrolv1.FlowSchema
	var pls []*flowcontrolv1.PriorityLevelConfiguration
	for _, d := range b.FlowSchemas {
		fss = append(fss, d.Object)
	}
	for _, d := range b.PriorityLevels {
		pls = append(pls, d.Object)
	}
	team := apfdefaults.FlowSchema("team-pods", "team", 500, flowcontrolv1.FlowDistinguisherMethodByNamespaceType, flowcontrolv1.PolicyRulesWithSubjects{
		Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount,
			ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: "team", Name: "*"}}},
		ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"list", "get"}, APIGroups: []string{""},
			Resources: []string{"pods", "pods/log"}, Namespaces: []string{"team"}}},
	})
	team.UID = "team-uid"
	// A schema for a level that does not exist is ignored, whatever its precedence.
	dangling := apfdefaults.FlowSchema("dangling", "missing", 50, "", apfdefaults.Everything(apfdefaults.Groups("system:authenticated")))
	teamLevel := apfdefaults.LimitedLevel("team", 10, 0, &flowcontrolv1.QueuingConfiguration{Queues: 4, HandSize: 2, QueueLengthLimit: 5})
	teamLevel.ObjectMeta = metav1.ObjectMeta{Name: "team", UID: "team-level-uid"}
	c := New(Options{})
	c.Update(append(fss, team, dangling), append(pls, teamLevel))

	sa := Request{User: "system:serviceaccount:team:ci", Groups: []string{"system:serviceaccounts", "system:authenticated"},
		ResourceRequest: true, Verb: "list", Resource: "pods", Namespace: "team"}
	tests := []struct {
		name   string
		mutate func(r *Request)
		schema string
	}{
		{"matching request", func(r *Request) {}, "team-pods"},
		{"subresource named in the rule", func(r *Request) { r.Verb, r.Subresource = "get", "log" }, "team-pods"},
		{"subresource not named", func(r *Request) { r.Subresource = "status" }, "service-accounts"},
		{"other namespace", func(r *Request) { r.Namespace = "other" }, "service-accounts"},
		{"cluster scope not allowed", func(r *Request) { r.Namespace = "" }, "service-accounts"},
		{"verb not listed", func(r *Request) { r.Verb = "delete" }, "service-accounts"},
		{"service account of another namespace", func(r *Request) { r.User = "system:serviceaccount:other:ci" }, "service-accounts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sa
			tc.mutate(&r)
			if got := c.Classify(&r); got.FlowSchema != tc.schema {
				t.Fatalf("classified as %s, want %s", got.FlowSchema, tc.schema)
			}
		})
	}
	if got := c.Classify(&sa); got.FlowSchemaUID != "team-uid" || got.PriorityLevelUID != "team-level-uid" {
		t.Fatalf("UIDs = %q, %q", got.FlowSchemaUID, got.PriorityLevelUID)
	}
}

func TestNominalLimitsSplitServerLimitByShares(t *testing.T) {
	c := New(Options{ConcurrencyLimit: 600})
	// Shares of the defaults: 5+0+30+40+10+40+100+20 = 245.
	for level, want := range map[string]int{"global-default": 49, "workload-low": 245, "system": 74, "catch-all": 13, "leader-election": 25} {
		if got := c.NominalLimit(level); got != want {
			t.Errorf("%s: %d seats, want %d", level, got, want)
		}
	}
	// Idle levels lend at once, but the current limits still share out
	// exactly the nominal seats.
	nominal, current := 0, 0
	for name := range c.levels {
		nominal += c.NominalLimit(name)
		current += c.Limit(name)
	}
	if current != nominal || nominal < 600 {
		t.Errorf("current limits sum to %d, nominal ones to %d", current, nominal)
	}
}

func BenchmarkClassify(b *testing.B) {
	c := New(Options{})
	r := Request{User: "alice", Groups: []string{"system:authenticated"}, ResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "default"}
	b.ReportAllocs()
	for b.Loop() {
		c.Classify(&r)
	}
}

// BenchmarkAdmit is the filter's cost per request on a free level, from
// many goroutines at once (one level's lock is shared by its flows).
func BenchmarkAdmit(b *testing.B) {
	c := New(Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := Request{User: "alice", Groups: []string{"system:authenticated"}, ResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "default"}
		for pb.Next() {
			t, _, err := c.Admit(context.Background(), &r)
			if err != nil {
				b.Fatal(err)
			}
			t.Done()
		}
	})
}
