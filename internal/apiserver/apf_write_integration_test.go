package apiserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// flowHistogram returns the sample count and sum of a priority and
// fairness histogram for one level and schema.
func flowHistogram(t *testing.T, name, level, schema string) (uint64, float64) {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["priority_level"] == level && labels["flow_schema"] == schema {
				return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
			}
		}
	}
	return 0, 0
}

// TestWriteIsChargedForItsWatchers: a write's work estimate counts the
// watches its event reaches, as upstream's watch tracker: the resource's
// and the namespace's for a create, and also the object's own (a
// metadata.name field selector) for an update; watches of another
// namespace do not count. Twelve watchers make the create cost two seats.
func TestWriteIsChargedForItsWatchers(t *testing.T) {
	s := startFlowServer(t, 100)
	ctx := context.Background()
	admin := s.ClientWithToken("admin")
	const schema, level = "watch-charged-writes", "global-default"
	fs, err := admin.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: schema},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level},
			MatchingPrecedence:         100,
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: "writer"}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
					Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Namespaces: []string{"*"}, ClusterScope: true,
				}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "the writer classified by the new schema", func() bool {
		resp := get(t, s.URL+"/api/v1/namespaces/default/configmaps?limit=1", "writer")
		return resp != nil && resp.Header.Get(flowcontrolv1.ResponseHeaderMatchedFlowSchemaUID) == string(fs.UID)
	})

	// 10 watches of the namespace, 2 of all namespaces, 3 of another
	// namespace and 2 of the object by name.
	var watches []watch.Interface
	start := func(ns string, opts metav1.ListOptions) {
		w, err := admin.CoreV1().ConfigMaps(ns).Watch(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		watches = append(watches, w)
	}
	for range 10 {
		start("default", metav1.ListOptions{})
	}
	for range 2 {
		start("", metav1.ListOptions{})
	}
	for range 3 {
		start("kube-system", metav1.ListOptions{})
	}
	for range 2 {
		start("default", metav1.ListOptions{FieldSelector: "metadata.name=charged"})
	}
	// Every watch is registered once it has seen an event.
	for _, ns := range []string{"default", "kube-system"} {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "charged"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range watches {
		select {
		case <-w.ResultChan():
		case <-time.After(30 * time.Second):
			t.Fatalf("watch %d saw no event", i)
		}
	}

	writer := s.ClientWithToken("writer")
	count, sum := flowHistogram(t, "apiserver_flowcontrol_watch_count_samples", level, schema)
	seatsCount, seatsSum := flowHistogram(t, "apiserver_flowcontrol_work_estimated_seats", level, schema)
	if _, err := writer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c, v := flowHistogram(t, "apiserver_flowcontrol_watch_count_samples", level, schema)
	if c != count+1 || v-sum != 12 {
		t.Fatalf("the create was charged for %v watchers in %d samples, want 12 in 1", v-sum, c-count)
	}
	c, v = flowHistogram(t, "apiserver_flowcontrol_work_estimated_seats", level, schema)
	if c != seatsCount+1 || v-seatsSum != 2 {
		t.Fatalf("the create was estimated at %v seats in %d samples, want 2 in 1", v-seatsSum, c-seatsCount)
	}

	count, sum = flowHistogram(t, "apiserver_flowcontrol_watch_count_samples", level, schema)
	if _, err := writer.CoreV1().ConfigMaps("default").Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "charged"}, Data: map[string]string{"k": "v"}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if c, v := flowHistogram(t, "apiserver_flowcontrol_watch_count_samples", level, schema); c != count+1 || v-sum != 14 {
		t.Fatalf("the update was charged for %v watchers in %d samples, want 14 in 1", v-sum, c-count)
	}
}
