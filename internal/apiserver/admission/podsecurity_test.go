package admission

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// psNamespaces is a fake NamespaceLookup and PodLister.
type psNamespaces struct {
	labels map[string]map[string]string // namespace -> labels
	pods   map[string][]*corev1.Pod
}

func (f psNamespaces) GetNamespace(_ context.Context, name string) (*corev1.Namespace, error) {
	l, ok := f.labels[name]
	if !ok {
		return nil, apierrors.NewNotFound(corev1.Resource("namespaces"), name)
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, nil
}

func (f psNamespaces) ListPods(_ context.Context, ns string) ([]*corev1.Pod, error) {
	return f.pods[ns], nil
}

var (
	psPodsGVR        = corev1.SchemeGroupVersion.WithResource("pods")
	psNamespacesGVR  = corev1.SchemeGroupVersion.WithResource("namespaces")
	psDeploymentsGVR = appsv1.SchemeGroupVersion.WithResource("deployments")
)

// restrictedMessage is upstream's detail for a container that sets no
// security context, under restricted:latest.
const restrictedMessage = `allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), ` +
	`unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), ` +
	`runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), ` +
	`seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`

func plainPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
}

func restrictedPod(name string) *corev1.Pod {
	pod := plainPod(name)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	return pod
}

func privilegedPod(name string) *corev1.Pod {
	pod := plainPod(name)
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	return pod
}

func podSecurityWith(labels map[string]string) *PodSecurity {
	return NewPodSecurity(psNamespaces{labels: map[string]map[string]string{"ns": labels}}, nil)
}

func psPodCreate(pod *corev1.Pod) *Attributes {
	return &Attributes{Operation: Create, Kind: corev1.SchemeGroupVersion.WithKind("Pod"), Resource: psPodsGVR,
		Namespace: "ns", Name: pod.Name, Object: pod}
}

func TestPodSecurityEnforce(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		pod     *corev1.Pod
		wantErr string // the whole message of a 403
	}{
		{name: "no labels: privileged", pod: privilegedPod("x")},
		{name: "restricted refuses a plain pod",
			labels:  map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
			pod:     plainPod("x"),
			wantErr: `pods "x" is forbidden: violates PodSecurity "restricted:latest": ` + restrictedMessage},
		{name: "restricted admits a compliant pod",
			labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
			pod:    restrictedPod("x")},
		{name: "baseline admits a plain pod",
			labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"},
			pod:    plainPod("x")},
		{name: "baseline refuses a privileged pod, at the pinned version",
			labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline",
				"pod-security.kubernetes.io/enforce-version": "v1.30"},
			pod:     privilegedPod("x"),
			wantErr: `pods "x" is forbidden: violates PodSecurity "baseline:v1.30": privileged (container "app" must not set securityContext.privileged=true)`},
		{name: "an invalid enforce level enforces restricted",
			labels:  map[string]string{"pod-security.kubernetes.io/enforce": "bogus"},
			pod:     plainPod("x"),
			wantErr: `pods "x" is forbidden: violates PodSecurity "restricted:latest": ` + restrictedMessage},
		{name: "warn and audit never refuse",
			labels: map[string]string{"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"},
			pod:    privilegedPod("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := podSecurityWith(tt.labels).Validate(context.Background(), psPodCreate(tt.pod))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !apierrors.IsForbidden(err) || err.Error() != tt.wantErr {
				t.Fatalf("got %v\nwant 403 %s", err, tt.wantErr)
			}
		})
	}
}

func TestPodSecurityWarnings(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		obj    runtime.Object
		want   []string
	}{
		{name: "warn level warns about a pod",
			labels: map[string]string{"pod-security.kubernetes.io/warn": "restricted"},
			obj:    plainPod("x"),
			want:   []string{`would violate PodSecurity "restricted:latest": ` + restrictedMessage}},
		{name: "warn defaults to a stricter enforce level",
			labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30"},
			obj: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"},
				Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: privilegedPod("").Spec}}},
			want: []string{`would violate PodSecurity "baseline:v1.30": privileged (container "app" must not set securityContext.privileged=true)`}},
		{name: "a workload is never refused by enforce",
			labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "privileged"},
			obj: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d"},
				Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: plainPod("").Spec}}}},
		{name: "a compliant pod gets no warning",
			labels: map[string]string{"pod-security.kubernetes.io/warn": "restricted"},
			obj:    restrictedPod("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := psPodCreate(plainPod("x"))
			a.Object = tt.obj
			if _, ok := tt.obj.(*appsv1.Deployment); ok {
				a.Resource, a.Name = psDeploymentsGVR, "d"
			}
			if err := podSecurityWith(tt.labels).Validate(context.Background(), a); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !reflect.DeepEqual(a.Warnings, tt.want) {
				t.Fatalf("warnings %q, want %q", a.Warnings, tt.want)
			}
		})
	}
}

func TestPodSecurityPodUpdatesAndSubresources(t *testing.T) {
	p := podSecurityWith(map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	old := plainPod("x")

	relabelled := plainPod("x")
	relabelled.Labels = map[string]string{"a": "b"}
	upd := &Attributes{Operation: Update, Resource: psPodsGVR, Namespace: "ns", Name: "x", Object: relabelled, OldObject: old}
	if err := p.Validate(context.Background(), upd); err != nil {
		t.Errorf("a metadata-only update of an existing pod was refused: %v", err)
	}

	newImage := plainPod("x")
	newImage.Spec.Containers[0].Image = "nginx:2"
	upd = &Attributes{Operation: Update, Resource: psPodsGVR, Namespace: "ns", Name: "x", Object: newImage, OldObject: old}
	if err := p.Validate(context.Background(), upd); !apierrors.IsForbidden(err) {
		t.Errorf("an image change was not checked: %v", err)
	}

	debug := plainPod("x")
	debug.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}}}
	upd = &Attributes{Operation: Update, Resource: psPodsGVR, Subresource: "ephemeralcontainers", Namespace: "ns", Name: "x", Object: debug, OldObject: old}
	if err := p.Validate(context.Background(), upd); !apierrors.IsForbidden(err) {
		t.Errorf("an added ephemeral container was not checked: %v", err)
	}

	status := &Attributes{Operation: Update, Resource: psPodsGVR, Subresource: "status", Namespace: "ns", Name: "x", Object: newImage, OldObject: old}
	if err := p.Validate(context.Background(), status); err != nil {
		t.Errorf("a status update was checked: %v", err)
	}

	del := &Attributes{Operation: Delete, Resource: psPodsGVR, Namespace: "ns", Name: "x", OldObject: old}
	if err := p.Validate(context.Background(), del); err != nil {
		t.Errorf("a delete was checked: %v", err)
	}
}

func TestPodSecurityNamespaceMissing(t *testing.T) {
	p := NewPodSecurity(psNamespaces{}, nil)
	err := p.Validate(context.Background(), psPodCreate(plainPod("x")))
	if !apierrors.IsInternalError(err) || err.Error() != `Internal error occurred: failed to lookup namespace "ns"` {
		t.Fatalf("got %v, want upstream's internal error", err)
	}
}

func nsWrite(op Operation, labels, oldLabels map[string]string) *Attributes {
	a := &Attributes{Operation: op, Kind: corev1.SchemeGroupVersion.WithKind("Namespace"), Resource: psNamespacesGVR, Name: "ns",
		Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: labels}}}
	if op == Update {
		a.OldObject = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: oldLabels}}
	}
	return a
}

func TestPodSecurityNamespaceLabels(t *testing.T) {
	p := NewPodSecurity(psNamespaces{}, psNamespaces{})
	ctx := context.Background()
	bad := map[string]string{"pod-security.kubernetes.io/enforce": "bogus"}

	err := p.Validate(ctx, nsWrite(Create, bad, nil))
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid level on create: got %v, want 422", err)
	}
	want := `Namespace "ns" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": must be one of privileged, baseline, restricted`
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	if err := p.Validate(ctx, nsWrite(Update, bad, nil)); !apierrors.IsInvalid(err) {
		t.Errorf("invalid level added on update: got %v, want 422", err)
	}
	// Already invalid the same way: other updates of the namespace go on.
	if err := p.Validate(ctx, nsWrite(Update, bad, bad)); err != nil {
		t.Errorf("unchanged invalid label refused: %v", err)
	}
	if err := p.Validate(ctx, nsWrite(Create, map[string]string{"pod-security.kubernetes.io/warn-version": "1.2"}, nil)); !apierrors.IsInvalid(err) {
		t.Errorf("invalid version: got %v, want 422", err)
	}
	good := map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.37"}
	if err := p.Validate(ctx, nsWrite(Create, good, nil)); err != nil {
		t.Errorf("valid labels refused: %v", err)
	}
	status404 := &Attributes{Operation: Update, Resource: psNamespacesGVR, Subresource: "status", Name: "ns",
		Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Labels: bad}}, OldObject: &corev1.Namespace{}}
	if err := p.Validate(ctx, status404); err != nil {
		t.Errorf("status subresource checked: %v", err)
	}
}

func TestPodSecurityNewEnforceLevelWarnsAboutExistingPods(t *testing.T) {
	owned := func(pod *corev1.Pod, uid string) *corev1.Pod {
		pod.OwnerReferences = []metav1.OwnerReference{{Controller: ptr.To(true), UID: types.UID(uid), Name: "rs", Kind: "ReplicaSet", APIVersion: "apps/v1"}}
		return pod
	}
	pods := psNamespaces{pods: map[string][]*corev1.Pod{"ns": {
		owned(plainPod("web-b"), "rs1"), owned(plainPod("web-a"), "rs1"), plainPod("solo"),
		restrictedPod("fine"), privilegedPod("root"),
	}}}
	p := NewPodSecurity(psNamespaces{}, pods)
	restricted := map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}

	a := nsWrite(Update, restricted, nil)
	if err := p.Validate(context.Background(), a); err != nil {
		t.Fatalf("refused: %v", err)
	}
	want := []string{
		`existing pods in namespace "ns" violate the new PodSecurity enforce level "restricted:latest"`,
		`root: privileged, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile`,
		`solo (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile`,
	}
	if !reflect.DeepEqual(a.Warnings, want) {
		t.Fatalf("warnings\n%q\nwant\n%q", a.Warnings, want)
	}

	// No stricter than before: nothing to check.
	a = nsWrite(Update, map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}, restricted)
	if err := p.Validate(context.Background(), a); err != nil || len(a.Warnings) != 0 {
		t.Fatalf("loosening: err %v, warnings %q", err, a.Warnings)
	}

	// A bounded check says how far it got, one pod per controller first.
	p.maxPods = 2
	a = nsWrite(Update, restricted, nil)
	if err := p.Validate(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if len(a.Warnings) == 0 || a.Warnings[0] != "new PodSecurity enforce level only checked against the first 2 of 5 existing pods" {
		t.Fatalf("bounded check warnings %q", a.Warnings)
	}
	// web-b and solo were checked; web-a (web-b's replica) and root not.
	if got := a.Warnings[2]; got != `solo (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile` {
		t.Errorf("first checked pods: %q", a.Warnings)
	}
}
