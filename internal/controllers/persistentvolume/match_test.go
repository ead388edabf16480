package persistentvolume

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

type pvOpt func(*corev1.PersistentVolume)

func volume(name, size, class string, opts ...pvOpt) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
		Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: class,
	}, Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable}}
	for _, o := range opts {
		o(pv)
	}
	return pv
}

func modes(m ...corev1.PersistentVolumeAccessMode) pvOpt {
	return func(pv *corev1.PersistentVolume) { pv.Spec.AccessModes = m }
}
func claimRef(ns, name, uid string) pvOpt {
	return func(pv *corev1.PersistentVolume) {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: ns, Name: name, UID: types.UID(uid)}
	}
}
func phase(p corev1.PersistentVolumePhase) pvOpt {
	return func(pv *corev1.PersistentVolume) { pv.Status.Phase = p }
}

func claim(size, class string, m ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	if len(m) == 0 {
		m = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "uid-c"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(class), AccessModes: m,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		}}
}

// The matching rules are tested in volumematch; these cases pin the
// binder's own policy.
func TestFindMatch(t *testing.T) {
	rwo, rox, rwx := corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany
	tests := []struct {
		name    string
		claim   *corev1.PersistentVolumeClaim
		volumes []*corev1.PersistentVolume
		delay   bool
		want    string
	}{
		{name: "smallest that fits", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("big", "10Gi", ""), volume("fit", "2Gi", ""), volume("tiny", "500Mi", "")}, want: "fit"},
		{name: "fewest access modes before smallest", claim: claim("1Gi", "", rwo),
			volumes: []*corev1.PersistentVolume{volume("many", "1Gi", "", modes(rwo, rox, rwx)), volume("one", "5Gi", "")}, want: "one"},
		{name: "a volume not yet marked Available is taken", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("new", "1Gi", "", phase(corev1.VolumePending)), volume("old", "5Gi", "")}, want: "new"},
		{name: "released volumes are not reused", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("rel", "1Gi", "", phase(corev1.VolumeReleased))}},
		{name: "pre-bound to this claim wins", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("a", "1Gi", ""), volume("mine", "5Gi", "other", claimRef("ns", "c", ""))}, want: "mine"},
		{name: "WaitForFirstConsumer takes only pre-bound volumes", claim: claim("1Gi", "local"), delay: true,
			volumes: []*corev1.PersistentVolume{volume("free", "1Gi", "local"), volume("chosen", "1Gi", "local", claimRef("ns", "c", ""))}, want: "chosen"},
		{name: "WaitForFirstConsumer without pre-binding", claim: claim("1Gi", "local"), delay: true,
			volumes: []*corev1.PersistentVolume{volume("free", "1Gi", "local")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findMatch(tt.claim, tt.volumes, tt.delay)
			if err != nil {
				t.Fatal(err)
			}
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tt.want {
				t.Fatalf("matched %q, want %q", name, tt.want)
			}
		})
	}
}

func TestFindMatchInvalidSelector(t *testing.T) {
	pvc := claim("1Gi", "")
	pvc.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}
	if pv, err := findMatch(pvc, []*corev1.PersistentVolume{volume("a", "1Gi", "")}, false); err == nil {
		t.Fatalf("invalid selector matched %v", pv)
	}
}

// A claim naming a volume that cannot hold it stays Pending with
// upstream's VolumeMismatch event, and nothing is bound.
func TestPreboundClaimMismatch(t *testing.T) {
	pvc := claim("2Gi", "")
	pvc.Spec.VolumeName = "pv1"
	c, client, rec := newTestController(t, pvc, volume("pv1", "1Gi", ""))
	if err := c.sync(context.Background(), claimPrefix+"ns/c"); err != nil {
		t.Fatal(err)
	}
	want := `Warning VolumeMismatch Cannot bind to requested volume "pv1": requested PV is too small`
	select {
	case ev := <-rec.Events:
		if ev != want {
			t.Fatalf("event %q, want %q", ev, want)
		}
	default:
		t.Fatalf("no event, want %q", want)
	}
	for _, w := range writes(client) {
		if w == "update persistentvolumes" {
			t.Fatalf("volume written: %v", writes(client))
		}
	}
}
