package admission

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// saLookup is an in-memory ServiceAccountLookup safe for a writer racing
// the plugin.
type saLookup struct {
	mu  sync.Mutex
	sas map[string]*corev1.ServiceAccount
}

func (l *saLookup) GetServiceAccount(ns, name string) (*corev1.ServiceAccount, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sa, ok := l.sas[ns+"/"+name]
	return sa, ok
}

func (l *saLookup) add(sa *corev1.ServiceAccount) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sas[sa.Namespace+"/"+sa.Name] = sa
}

func newSAPlugin(sas ...*corev1.ServiceAccount) (*ServiceAccount, *saLookup) {
	l := &saLookup{sas: map[string]*corev1.ServiceAccount{}}
	for _, sa := range sas {
		l.add(sa)
	}
	p := NewServiceAccount(l)
	p.DefaultWait, p.CacheWait = 50*time.Millisecond, 10*time.Millisecond
	return p, l
}

func sa(name string, automount *bool) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, AutomountServiceAccountToken: automount}
}

func podCreate(pod *corev1.Pod) *Attributes {
	pod.Namespace = "ns"
	return &Attributes{Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("pods"), Namespace: "ns", Name: pod.Name, Object: pod}
}

func twoContainerPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "a"}, {Name: "b"}},
		},
	}
}

func TestServiceAccountMountsKubeAPIAccess(t *testing.T) {
	p, _ := newSAPlugin(sa("default", nil))
	pod := twoContainerPod()
	if err := p.Admit(context.Background(), podCreate(pod)); err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "default" {
		t.Fatalf("service account %q", pod.Spec.ServiceAccountName)
	}
	if len(pod.Spec.Volumes) != 1 {
		t.Fatalf("volumes %+v", pod.Spec.Volumes)
	}
	v := pod.Spec.Volumes[0]
	if !strings.HasPrefix(v.Name, "kube-api-access-") || len(v.Name) != len("kube-api-access-")+5 {
		t.Fatalf("volume name %q", v.Name)
	}
	pr := v.Projected
	if pr == nil || len(pr.Sources) != 3 || *pr.DefaultMode != 420 {
		t.Fatalf("projected %+v", pr)
	}
	if tok := pr.Sources[0].ServiceAccountToken; tok == nil || tok.Path != "token" || *tok.ExpirationSeconds != 3607 {
		t.Fatalf("token source %+v", pr.Sources[0])
	}
	if cm := pr.Sources[1].ConfigMap; cm == nil || cm.Name != "kube-root-ca.crt" || cm.Items[0] != (corev1.KeyToPath{Key: "ca.crt", Path: "ca.crt"}) {
		t.Fatalf("configmap source %+v", pr.Sources[1])
	}
	if d := pr.Sources[2].DownwardAPI; d == nil || d.Items[0].Path != "namespace" || d.Items[0].FieldRef.FieldPath != "metadata.namespace" || d.Items[0].FieldRef.APIVersion != "v1" {
		t.Fatalf("downward API source %+v", pr.Sources[2])
	}
	want := corev1.VolumeMount{Name: v.Name, ReadOnly: true, MountPath: ServiceAccountTokenMountPath}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		if len(c.VolumeMounts) != 1 || !equality.Semantic.DeepEqual(c.VolumeMounts[0], want) {
			t.Errorf("container %s mounts %+v", c.Name, c.VolumeMounts)
		}
	}
}

func TestServiceAccountAutomountAndExistingMounts(t *testing.T) {
	cases := []struct {
		name       string
		sa         *corev1.ServiceAccount
		mutate     func(*corev1.Pod)
		wantVolume bool
		wantMounts int // containers given the token mount
	}{
		{"service account opts out", sa("default", ptr.To(false)), nil, false, 0},
		{"pod opts out", sa("default", nil), func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = ptr.To(false) }, false, 0},
		{"pod overrides service account", sa("default", ptr.To(false)), func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = ptr.To(true) }, true, 3},
		{"container mounts its own", sa("default", nil), func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: ServiceAccountTokenMountPath}}
		}, true, 2},
		{"every container mounts its own", sa("default", nil), func(p *corev1.Pod) {
			for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
				for i := range cs {
					cs[i].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: ServiceAccountTokenMountPath}}
				}
			}
		}, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newSAPlugin(tc.sa)
			pod := twoContainerPod()
			if tc.mutate != nil {
				tc.mutate(pod)
			}
			if err := p.Admit(context.Background(), podCreate(pod)); err != nil {
				t.Fatal(err)
			}
			if got := len(pod.Spec.Volumes) == 1; got != tc.wantVolume {
				t.Fatalf("volume added = %v, want %v", got, tc.wantVolume)
			}
			mounts := 0
			for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
				for _, m := range c.VolumeMounts {
					if strings.HasPrefix(m.Name, "kube-api-access-") {
						mounts++
					}
				}
			}
			if mounts != tc.wantMounts {
				t.Fatalf("token mounts %d, want %d", mounts, tc.wantMounts)
			}
		})
	}
}

func TestServiceAccountReusesCopiedVolume(t *testing.T) {
	p, _ := newSAPlugin(sa("default", nil))
	pod := twoContainerPod()
	pod.Spec.Volumes = []corev1.Volume{kubeAPIAccessVolume("kube-api-access-abcde")}
	if err := p.Admit(context.Background(), podCreate(pod)); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Containers[0].VolumeMounts[0].Name != "kube-api-access-abcde" {
		t.Fatalf("volume not reused: %+v %+v", pod.Spec.Volumes, pod.Spec.Containers[0].VolumeMounts)
	}
}

func TestServiceAccountMissingIsForbidden(t *testing.T) {
	p, _ := newSAPlugin(sa("default", nil))
	pod := twoContainerPod()
	pod.Spec.ServiceAccountName = "ghost"
	err := p.Admit(context.Background(), podCreate(pod))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("err = %v", err)
	}
	want := `pods "p" is forbidden: error looking up service account ns/ghost: serviceaccount "ghost" not found`
	if err.Error() != want {
		t.Fatalf("message\n got %s\nwant %s", err, want)
	}
}

func TestServiceAccountWaitsForDefault(t *testing.T) {
	p, l := newSAPlugin()
	p.DefaultWait = 5 * time.Second
	go func() {
		time.Sleep(30 * time.Millisecond)
		l.add(sa("default", nil))
	}()
	start := time.Now()
	if err := p.Admit(context.Background(), podCreate(twoContainerPod())); err != nil {
		t.Fatalf("pod in a new namespace refused: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pod := twoContainerPod()
	pod.Spec.ServiceAccountName = "later"
	p.CacheWait = time.Hour
	if err := p.Admit(ctx, podCreate(pod)); !apierrors.IsForbidden(err) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestServiceAccountSkips(t *testing.T) {
	p, _ := newSAPlugin() // no service accounts at all
	mirror := twoContainerPod()
	mirror.Annotations = map[string]string{"kubernetes.io/config.mirror": "x"}
	if err := p.Admit(context.Background(), podCreate(mirror)); err != nil || mirror.Spec.ServiceAccountName != "" || len(mirror.Spec.Volumes) != 0 {
		t.Fatalf("mirror pod changed: %v %+v", err, mirror.Spec)
	}
	upd := podCreate(twoContainerPod())
	upd.Operation = Update
	if err := p.Admit(context.Background(), upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	other := &Attributes{Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("configmaps"), Namespace: "ns", Object: &corev1.ConfigMap{}}
	if err := p.Admit(context.Background(), other); err != nil {
		t.Fatalf("configmap: %v", err)
	}
}

func TestServiceAccountReadsDeprecatedAlias(t *testing.T) {
	p, _ := newSAPlugin(sa("builder", nil))
	pod := twoContainerPod()
	pod.Spec.DeprecatedServiceAccount = "builder"
	if err := p.Admit(context.Background(), podCreate(pod)); err != nil || pod.Spec.ServiceAccountName != "builder" {
		t.Fatalf("%v %q", err, pod.Spec.ServiceAccountName)
	}
}

func TestServiceAccountCopiesImagePullSecrets(t *testing.T) {
	s := sa("builder", nil)
	s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	p, _ := newSAPlugin(s)
	pod := twoContainerPod()
	pod.Spec.ServiceAccountName = "builder"
	if err := p.Admit(context.Background(), podCreate(pod)); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "regcred" {
		t.Fatalf("image pull secrets %+v", pod.Spec.ImagePullSecrets)
	}
}
