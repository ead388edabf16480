package clusterroleaggregation

import (
	"context"
	"log/slog"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func aggregatedRole(name, selector string, labels map[string]string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
			{MatchLabels: map[string]string{selector: "true"}},
		}},
	}
}

func plainRole(name string, labels map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Rules: rules}
}

func readRule(resource string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{resource}}
}

func TestAggregation(t *testing.T) {
	const toView, toEdit = "aggregate-to-view", "aggregate-to-edit"
	client := fake.NewClientset(
		aggregatedRole("view", toView, map[string]string{toEdit: "true"}),
		aggregatedRole("edit", toEdit, nil),
		plainRole("b-pods", map[string]string{toView: "true"}, readRule("pods")),
		// The same rule twice is kept once.
		plainRole("a-pods-and-cms", map[string]string{toView: "true"}, readRule("pods"), readRule("configmaps")),
		plainRole("secrets", map[string]string{toEdit: "true"}, readRule("secrets")),
		plainRole("unrelated", nil, readRule("nodes")),
	)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	view := waitRules(t, client, "view", 2)
	if view[0].Resources[0] != "pods" || view[1].Resources[0] != "configmaps" {
		t.Errorf("view rules = %v, want pods then configmaps (roles by name, rules deduplicated)", view)
	}
	// edit gathers secrets and, through view's label, view's rules.
	waitRules(t, client, "edit", 3)

	// A new labelled role joins the aggregation.
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, plainRole("svc", map[string]string{toView: "true"}, readRule("services")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRules(t, client, "view", 3)
	waitRules(t, client, "edit", 4)

	// Once settled, a resync writes nothing.
	time.Sleep(100 * time.Millisecond)
	before := len(client.Actions())
	c.enqueueAggregated()
	time.Sleep(200 * time.Millisecond)
	for _, a := range client.Actions()[before:] {
		if a.GetVerb() == "update" {
			t.Errorf("unexpected %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func waitRules(t *testing.T, client *fake.Clientset, name string, n int) []rbacv1.PolicyRule {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := client.RbacV1().ClusterRoles().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Rules) == n {
			return r.Rules
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has rules %v, want %d", name, r.Rules, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
