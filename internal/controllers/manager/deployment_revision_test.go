package manager

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// What kubectl rollout history reads: the deployment's own revision, and
// each set's revision and change-cause.
func TestDeploymentRevisionAnnotations(t *testing.T) {
	c, ctx := startManager(t)
	deps := c.AppsV1().Deployments("default")
	d := deploymentObj("hist", 1, "busybox:1.35")
	d.Annotations = map[string]string{"kubernetes.io/change-cause": "first"}
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	revision := func(want string) func() bool {
		return func() bool {
			d, err := deps.Get(ctx, "hist", metav1.GetOptions{})
			return err == nil && d.Annotations["deployment.kubernetes.io/revision"] == want
		}
	}
	eventually(t, "deployment revision 1", revision("1"))
	// The controller writes the Deployment's status meanwhile: retry on
	// conflicts as any client would.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deps.Get(ctx, "hist", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Annotations["kubernetes.io/change-cause"] = "second"
		cur.Spec.Template.Spec.Containers[0].Image = "busybox:1.36"
		_, err = deps.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "deployment revision 2", revision("2"))
	causes := map[string]string{}
	for _, rs := range setsOf(t, ctx, c, "hist") {
		causes[rs.Annotations["deployment.kubernetes.io/revision"]] = rs.Annotations["kubernetes.io/change-cause"]
	}
	if causes["1"] != "first" || causes["2"] != "second" || len(causes) != 2 {
		t.Fatalf("revision -> change-cause %v, want 1: first, 2: second", causes)
	}
}
