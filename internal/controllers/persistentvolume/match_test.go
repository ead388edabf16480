package persistentvolume

import (
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
func labelled(k, v string) pvOpt {
	return func(pv *corev1.PersistentVolume) { pv.Labels = map[string]string{k: v} }
}
func block() pvOpt {
	return func(pv *corev1.PersistentVolume) { pv.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock) }
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

func TestFindMatch(t *testing.T) {
	rwo, rox, rwx := corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany
	withSelector := claim("1Gi", "")
	withSelector.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"disk": "ssd"}}
	blockClaim := claim("1Gi", "")
	blockClaim.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	tests := []struct {
		name    string
		claim   *corev1.PersistentVolumeClaim
		volumes []*corev1.PersistentVolume
		delay   bool
		want    string
	}{
		{name: "smallest that fits", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("big", "10Gi", ""), volume("fit", "2Gi", ""), volume("tiny", "500Mi", "")}, want: "fit"},
		{name: "class must match", claim: claim("1Gi", "fast"),
			volumes: []*corev1.PersistentVolume{volume("slow", "1Gi", "slow"), volume("fast", "5Gi", "fast")}, want: "fast"},
		{name: "no class matches only classless volumes", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("classed", "1Gi", "x")}},
		{name: "access modes must be offered", claim: claim("1Gi", "", rwx),
			volumes: []*corev1.PersistentVolume{volume("rwo", "1Gi", ""), volume("rwx", "9Gi", "", modes(rwo, rwx))}, want: "rwx"},
		{name: "fewest access modes before smallest", claim: claim("1Gi", "", rwo),
			volumes: []*corev1.PersistentVolume{volume("many", "1Gi", "", modes(rwo, rox, rwx)), volume("one", "5Gi", "")}, want: "one"},
		{name: "selector", claim: withSelector,
			volumes: []*corev1.PersistentVolume{volume("hdd", "1Gi", ""), volume("ssd", "3Gi", "", labelled("disk", "ssd"))}, want: "ssd"},
		{name: "volume mode must agree", claim: blockClaim,
			volumes: []*corev1.PersistentVolume{volume("fs", "1Gi", ""), volume("blk", "1Gi", "", block())}, want: "blk"},
		{name: "volumes bound elsewhere are skipped", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("taken", "1Gi", "", claimRef("ns", "other", "u2"))}},
		{name: "pre-bound to this claim wins over a smaller one, any class", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("a", "1Gi", ""), volume("mine", "5Gi", "other", claimRef("ns", "c", ""))}, want: "mine"},
		{name: "pre-bound to an older claim of the same name is skipped", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("old", "5Gi", "", claimRef("ns", "c", "uid-old"))}},
		{name: "pre-bound but too small", claim: claim("2Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("mine", "1Gi", "", claimRef("ns", "c", "uid-c"))}},
		{name: "released volumes are not reused", claim: claim("1Gi", ""),
			volumes: []*corev1.PersistentVolume{volume("rel", "1Gi", "", phase(corev1.VolumeReleased))}},
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

func TestMismatch(t *testing.T) {
	c := claim("2Gi", "x", corev1.ReadWriteMany)
	for _, tt := range []struct {
		pv   *corev1.PersistentVolume
		want string
	}{
		{volume("small", "1Gi", "x", modes(corev1.ReadWriteMany)), "requested PV is too small"},
		{volume("class", "2Gi", "y", modes(corev1.ReadWriteMany)), "storageClassName does not match"},
		{volume("mode", "2Gi", "x", modes(corev1.ReadWriteMany), block()), "incompatible volumeMode"},
		{volume("access", "2Gi", "x"), "incompatible accessMode"},
		{volume("ok", "2Gi", "x", modes(corev1.ReadWriteMany)), ""},
	} {
		if got := mismatch(c, tt.pv); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.pv.Name, got, tt.want)
		}
	}
}
