package apis

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

func TestRegistryKindsMatchTheScheme(t *testing.T) {
	all := All()
	reg := NewRegistry(all)
	for _, r := range all {
		gvk := r.GVR.GroupVersion().WithKind(r.Kind)
		types, _, err := scheme.Scheme.ObjectKinds(r.New())
		if err != nil || len(types) == 0 || types[0].Kind != r.Kind {
			t.Errorf("%s: New() is %T, scheme says %v (%v)", r.GVR, r.New(), types, err)
		}
		if r.CreateOnly {
			if r.NewList != nil {
				t.Errorf("%s: a create-only resource has a list kind", r.GVR)
			}
		} else if lt, _, err := scheme.Scheme.ObjectKinds(r.NewList()); err != nil || lt[0].Kind != r.Kind+"List" {
			t.Errorf("%s: NewList() kind %v (%v)", r.GVR, lt, err)
		}
		if got, ok := reg.ByKind(gvk); !ok || got != r {
			t.Errorf("ByKind(%s) did not find %s", gvk, r.GVR)
		}
		if got, ok := reg.Lookup(r.GVR.Group, r.GVR.Version, r.GVR.Resource); !ok || got != r {
			t.Errorf("Lookup(%s) failed", r.GVR)
		}
	}
	gvs := reg.GroupVersions()
	if gvs[0] != (schema.GroupVersion{Version: "v1"}) || gvs[1].Group != "apiregistration.k8s.io" || gvs[2].Group != "apps" {
		t.Fatalf("discovery order starts %v", gvs[:3])
	}
}

func deployment(selector, template map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: template},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
		},
	}
}

func TestDeploymentSelectorMustMatchTemplate(t *testing.T) {
	d := deployment(map[string]string{"app": "a"}, map[string]string{"app": "b"})
	Default(d)
	errs := Validate(d)
	if len(errs) != 1 || errs[0].Field != "spec.template.metadata.labels" || !strings.Contains(errs[0].Detail, "does not match") {
		t.Fatalf("errors = %v", errs)
	}
	ok := deployment(map[string]string{"app": "a"}, map[string]string{"app": "a"})
	Default(ok)
	if errs := Validate(ok); len(errs) != 0 {
		t.Fatalf("valid deployment refused: %v", errs)
	}
	if *ok.Spec.Replicas != 1 || ok.Spec.Strategy.RollingUpdate.MaxSurge.StrVal != "25%" ||
		ok.Spec.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent ||
		ok.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Fatalf("defaults not applied: %+v", ok.Spec)
	}
	changed := ok.DeepCopy()
	changed.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a", "x": "y"}}
	changed.Spec.Template.Labels = map[string]string{"app": "a", "x": "y"}
	if errs := ValidateUpdate(changed, ok); len(errs) == 0 || errs[0].Field != "spec.selector" {
		t.Fatalf("selector change allowed: %v", errs)
	}
}

func TestPodUpdateMayOnlyChangeImages(t *testing.T) {
	old := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "a:1"}}}}
	Default(old)
	img := old.DeepCopy()
	img.Spec.Containers[0].Image = "a:2"
	if errs := ValidateUpdate(img, old); len(errs) != 0 {
		t.Fatalf("image change refused: %v", errs)
	}
	cmd := old.DeepCopy()
	cmd.Spec.Containers[0].Command = []string{"sh"}
	errs := ValidateUpdate(cmd, old)
	if len(errs) != 1 || errs[0].Field != "spec" || errs[0].Type != "FieldValueForbidden" {
		t.Fatalf("command change: %v", errs)
	}
}

func TestJobSelectsItsPodsByUID(t *testing.T) {
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j", UID: "1234"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}},
		}}},
	}
	Default(j)
	if j.Spec.Selector == nil || j.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"] != "1234" {
		t.Fatalf("selector = %v", j.Spec.Selector)
	}
	if j.Spec.Template.Labels["batch.kubernetes.io/job-name"] != "j" || *j.Spec.BackoffLimit != 6 || *j.Spec.Completions != 1 {
		t.Fatalf("template labels %v backoff %d", j.Spec.Template.Labels, *j.Spec.BackoffLimit)
	}
	if errs := Validate(j); len(errs) != 0 {
		t.Fatal(errs)
	}
	j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	if errs := Validate(j); len(errs) != 1 || errs[0].Field != "spec.template.spec.restartPolicy" {
		t.Fatalf("Always restart policy: %v", errs)
	}
}

func TestServiceDefaultsAndPorts(t *testing.T) {
	s := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}, {Port: 443}}}}
	Default(s)
	if s.Spec.Type != corev1.ServiceTypeClusterIP || s.Spec.Ports[0].TargetPort.IntVal != 80 || s.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Fatalf("defaults: %+v", s.Spec)
	}
	errs := Validate(s)
	if len(errs) != 2 || errs[0].Field != "spec.ports[0].name" {
		t.Fatalf("unnamed ports of a multi-port service: %v", errs)
	}
}

func TestPodTableStatus(t *testing.T) {
	now := metav1.Now()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{CreationTimestamp: now},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		}}},
	}
	if got := PodStatus(p); got != "ContainerCreating" {
		t.Fatalf("status = %q", got)
	}
	p.DeletionTimestamp = &now
	if got := PodStatus(p); got != "Terminating" {
		t.Fatalf("terminating status = %q", got)
	}
	cols, row := tableFor("Pod")
	if cells := row(p); len(cells) != len(cols) || cells[0] != "0/1" {
		t.Fatalf("row %v for %d columns", cells, len(cols))
	}
}

func TestHumanAge(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		ago  time.Duration
		want string
	}{
		{5 * time.Second, "5s"},
		{119 * time.Second, "119s"},
		{3*time.Minute + 2*time.Second, "3m2s"},
		{2 * time.Hour, "120m"},
		{4 * time.Hour, "4h"},
		{5*time.Hour + 30*time.Minute, "5h30m"},
		{50 * time.Hour, "2d2h"},
		{30 * 24 * time.Hour, "30d"},
	} {
		if got := HumanAge(now.Add(-c.ago), now); got != c.want {
			t.Errorf("HumanAge(%s) = %q, want %q", c.ago, got, c.want)
		}
	}
}

func TestEveryTableRowMatchesItsColumns(t *testing.T) {
	for _, r := range All() {
		if r.TableRow == nil {
			continue
		}
		obj := r.New()
		if cells := r.TableRow(obj); len(cells) != len(r.TableColumns) {
			t.Errorf("%s: %d cells for %d columns", r.Kind, len(cells), len(r.TableColumns))
		}
		for _, c := range r.TableColumns {
			if c.Type == "" || c.Description == "" {
				t.Errorf("%s: column %q lacks a type or description", r.Kind, c.Name)
			}
		}
	}
}

func TestMalformedSchedulingTermsAreRefused(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	p.Spec.Affinity = &corev1.Affinity{
		NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "zone", Operator: "Near", Values: []string{"a"}},
				{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"many"}},
			}}},
		}},
		PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
		}}},
	}
	p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: "Sometimes"}}
	errs := Validate(p)
	want := map[string]bool{
		"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator":  true,
		"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].values[0]": true,
		"spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey":                                  true,
		"spec.topologySpreadConstraints[0].maxSkew":           true,
		"spec.topologySpreadConstraints[0].whenUnsatisfiable": true,
	}
	for _, e := range errs {
		delete(want, e.Field)
	}
	if len(want) > 0 {
		t.Fatalf("not refused: %v (errors: %v)", want, errs)
	}
}

func TestJobStatusColumnPrefersTerminalConditions(t *testing.T) {
	j := &batchv1.Job{Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
	}}}
	if got := jobStatus(j); got != "Complete" {
		t.Fatalf("status = %q, want Complete", got)
	}
	j.Status.Conditions = j.Status.Conditions[:1]
	if got := jobStatus(j); got != "SuccessCriteriaMet" {
		t.Fatalf("status = %q, want SuccessCriteriaMet", got)
	}
}
