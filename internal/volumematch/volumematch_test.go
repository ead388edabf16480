package volumematch

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var (
	rwo = corev1.ReadWriteOnce
	rox = corev1.ReadOnlyMany
	rwx = corev1.ReadWriteMany
)

type pvOpt func(*corev1.PersistentVolume)

// volume is an Available, unclaimed RWO filesystem volume.
func volume(name, size, class string, opts ...pvOpt) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
		Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
		AccessModes:      []corev1.PersistentVolumeAccessMode{rwo},
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
func claimRef(name, uid string) pvOpt {
	return func(pv *corev1.PersistentVolume) {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: name, UID: types.UID(uid)}
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
func deleting() pvOpt {
	return func(pv *corev1.PersistentVolume) { pv.DeletionTimestamp = &metav1.Time{} }
}
func betaClass(c string) pvOpt {
	return func(pv *corev1.PersistentVolume) {
		pv.Annotations = map[string]string{corev1.BetaStorageClassAnnotation: c}
	}
}
func onHost(host string) pvOpt {
	return func(pv *corev1.PersistentVolume) {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{host}}},
		}}}}
	}
}

type pvcOpt func(*corev1.PersistentVolumeClaim)

// claim is ns/c (uid-c), RWO unless modes are given.
func claim(size, class string, opts ...pvcOpt) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "uid-c"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To(class), AccessModes: []corev1.PersistentVolumeAccessMode{rwo},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		}}
	for _, o := range opts {
		o(pvc)
	}
	return pvc
}

func wants(m ...corev1.PersistentVolumeAccessMode) pvcOpt {
	return func(pvc *corev1.PersistentVolumeClaim) { pvc.Spec.AccessModes = m }
}
func selects(k, v string) pvcOpt {
	return func(pvc *corev1.PersistentVolumeClaim) {
		pvc.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}
func blockClaim() pvcOpt {
	return func(pvc *corev1.PersistentVolumeClaim) { pvc.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock) }
}

func hostNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
}

func names(cands []Candidate) []string {
	var out []string
	for _, c := range cands {
		out = append(out, c.PV.Name)
	}
	return out
}

// Each rule's case puts the volume breaking it first in the order it
// would otherwise win (smallest), so dropping the rule changes the result.
func TestCandidates(t *testing.T) {
	tests := []struct {
		name   string
		claim  *corev1.PersistentVolumeClaim
		pvs    []*corev1.PersistentVolume
		policy Policy
		want   []string
	}{
		{name: "smallest that fits first", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("big", "10Gi", ""), volume("fit", "2Gi", ""), volume("tiny", "500Mi", ""), volume("exact", "1Gi", "")},
			want: []string{"exact", "fit", "big"}},
		{name: "equal sizes by name", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("b", "1Gi", ""), volume("a", "1Gi", "")},
			want: []string{"a", "b"}},
		{name: "capacity too small", claim: claim("2Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("small", "1Gi", ""), volume("ok", "3Gi", "")},
			want: []string{"ok"}},
		{name: "class must match", claim: claim("1Gi", "fast"),
			pvs:  []*corev1.PersistentVolume{volume("slow", "1Gi", "slow"), volume("fast", "5Gi", "fast")},
			want: []string{"fast"}},
		{name: "no class takes only classless volumes", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("classed", "1Gi", "x"), volume("plain", "5Gi", "")},
			want: []string{"plain"}},
		{name: "beta class annotation wins over the field", claim: claim("1Gi", "fast"),
			pvs:  []*corev1.PersistentVolume{volume("annotated-slow", "1Gi", "fast", betaClass("slow")), volume("fast", "5Gi", "fast")},
			want: []string{"fast"}},
		{name: "access modes must be offered", claim: claim("1Gi", "", wants(rwx)),
			pvs:  []*corev1.PersistentVolume{volume("rwo", "1Gi", ""), volume("rwx", "9Gi", "", modes(rwo, rwx))},
			want: []string{"rwx"}},
		{name: "volume mode must agree", claim: claim("1Gi", "", blockClaim()),
			pvs:  []*corev1.PersistentVolume{volume("fs", "1Gi", ""), volume("blk", "5Gi", "", block())},
			want: []string{"blk"}},
		{name: "filesystem claim skips block volumes", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("blk", "1Gi", "", block()), volume("fs", "5Gi", "")},
			want: []string{"fs"}},
		{name: "selector", claim: claim("1Gi", "", selects("disk", "ssd")),
			pvs:  []*corev1.PersistentVolume{volume("hdd", "1Gi", ""), volume("ssd", "3Gi", "", labelled("disk", "ssd"))},
			want: []string{"ssd"}},
		{name: "volumes claimed by others are skipped", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("taken", "1Gi", "", claimRef("other", "u2")), volume("free", "5Gi", "")},
			want: []string{"free"}},
		{name: "released volumes are not reused", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("rel", "1Gi", "", phase(corev1.VolumeReleased)), volume("free", "5Gi", "")},
			want: []string{"free"}},
		{name: "volumes being deleted are skipped", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("going", "1Gi", "", deleting()), volume("free", "5Gi", "")},
			want: []string{"free"}},
		{name: "new volumes wait for Available", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("new", "1Gi", "", phase(corev1.VolumePending)), volume("unset", "1Gi", "", phase("")), volume("free", "5Gi", "")},
			want: []string{"free"}},
		{name: "AcceptNewVolumes takes unset and Pending phases", claim: claim("1Gi", ""), policy: Policy{AcceptNewVolumes: true},
			pvs:  []*corev1.PersistentVolume{volume("new", "1Gi", "", phase(corev1.VolumePending)), volume("unset", "2Gi", "", phase("")), volume("rel", "1Gi", "", phase(corev1.VolumeReleased))},
			want: []string{"new", "unset"}},
		{name: "size only ignores access mode count", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("many", "1Gi", "", modes(rwo, rox, rwx)), volume("one", "5Gi", "")},
			want: []string{"many", "one"}},
		{name: "FewestAccessModesFirst before smallest", claim: claim("1Gi", ""), policy: Policy{FewestAccessModesFirst: true},
			pvs:  []*corev1.PersistentVolume{volume("many", "1Gi", "", modes(rwo, rox, rwx)), volume("one", "5Gi", "")},
			want: []string{"one", "many"}},
		{name: "pre-bound wins alone, any class, access modes or phase", claim: claim("1Gi", "", wants(rwx)),
			pvs:  []*corev1.PersistentVolume{volume("a", "1Gi", "", modes(rwx)), volume("mine", "5Gi", "other", claimRef("c", ""), phase(corev1.VolumeBound))},
			want: []string{"mine"}},
		{name: "pre-bound with this claim's UID", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("a", "1Gi", ""), volume("mine", "5Gi", "", claimRef("c", "uid-c"))},
			want: []string{"mine"}},
		{name: "pre-bound to an older claim of the same name is skipped", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("old", "1Gi", "", claimRef("c", "uid-old")), volume("free", "5Gi", "")},
			want: []string{"free"}},
		{name: "pre-bound but too small falls back to free volumes", claim: claim("2Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("mine", "1Gi", "", claimRef("c", "uid-c")), volume("free", "5Gi", "")},
			want: []string{"free"}},
		{name: "pre-bound of the other volume mode is skipped", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("mine", "1Gi", "", claimRef("c", "uid-c"), block())},
			want: nil},
		{name: "pre-bound being deleted is skipped", claim: claim("1Gi", ""),
			pvs:  []*corev1.PersistentVolume{volume("mine", "1Gi", "", claimRef("c", "uid-c"), deleting())},
			want: nil},
		{name: "PreboundOnly takes the pre-bound volume", claim: claim("1Gi", "local"), policy: Policy{PreboundOnly: true},
			pvs:  []*corev1.PersistentVolume{volume("free", "1Gi", "local"), volume("chosen", "1Gi", "local", claimRef("c", ""))},
			want: []string{"chosen"}},
		{name: "PreboundOnly without pre-binding", claim: claim("1Gi", "local"), policy: Policy{PreboundOnly: true},
			pvs:  []*corev1.PersistentVolume{volume("free", "1Gi", "local")},
			want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Candidates(tt.claim, tt.pvs, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tt.want) {
				t.Fatalf("candidates %q, want %q", names(got), tt.want)
			}
			for _, c := range got {
				if c.Prebound != (c.PV.Spec.ClaimRef != nil) {
					t.Fatalf("%s: Prebound %v with claimRef %v", c.PV.Name, c.Prebound, c.PV.Spec.ClaimRef)
				}
			}
		})
	}
}

func TestCandidatesInvalidSelector(t *testing.T) {
	pvc := claim("1Gi", "")
	pvc.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}
	if got, err := Candidates(pvc, []*corev1.PersistentVolume{volume("a", "1Gi", "")}, Policy{}); err == nil {
		t.Fatalf("invalid selector matched %q", names(got))
	}
}

func TestMismatch(t *testing.T) {
	c := claim("2Gi", "x", wants(rwx))
	for _, tt := range []struct {
		pv   *corev1.PersistentVolume
		want string
	}{
		{volume("small", "1Gi", "x", modes(rwx)), "requested PV is too small"},
		{volume("class", "2Gi", "y", modes(rwx)), "storageClassName does not match"},
		{volume("mode", "2Gi", "x", modes(rwx), block()), "incompatible volumeMode"},
		{volume("access", "2Gi", "x"), "incompatible accessMode"},
		{volume("ok", "2Gi", "x", modes(rwo, rwx)), ""},
	} {
		if got := Mismatch(c, tt.pv); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.pv.Name, got, tt.want)
		}
	}
}

func TestBoundToClaim(t *testing.T) {
	c := claim("1Gi", "")
	for _, tt := range []struct {
		ref  *corev1.ObjectReference
		want bool
	}{
		{nil, false},
		{&corev1.ObjectReference{Namespace: "ns", Name: "c"}, true},
		{&corev1.ObjectReference{Namespace: "ns", Name: "c", UID: "uid-c"}, true},
		{&corev1.ObjectReference{Namespace: "ns", Name: "c", UID: "uid-old"}, false},
		{&corev1.ObjectReference{Namespace: "other", Name: "c"}, false},
		{&corev1.ObjectReference{Namespace: "ns", Name: "d"}, false},
	} {
		pv := volume("pv", "1Gi", "")
		pv.Spec.ClaimRef = tt.ref
		if got := BoundToClaim(pv, c); got != tt.want {
			t.Errorf("claimRef %+v: %v, want %v", tt.ref, got, tt.want)
		}
	}
}

func TestClaimClass(t *testing.T) {
	c := claim("1Gi", "field")
	if got := ClaimClass(c); got != "field" {
		t.Fatalf("field: %q", got)
	}
	c.Annotations = map[string]string{corev1.BetaStorageClassAnnotation: "beta"}
	if got := ClaimClass(c); got != "beta" {
		t.Fatalf("annotation: %q", got)
	}
	c.Annotations, c.Spec.StorageClassName = nil, nil
	if got := ClaimClass(c); got != "" {
		t.Fatalf("unset: %q", got)
	}
}

func TestNodeAffinity(t *testing.T) {
	n1 := hostNode("n1")
	if !MatchesNode(volume("free", "1Gi", ""), n1) {
		t.Fatal("a volume without affinity must fit every node")
	}
	if !MatchesNode(volume("here", "1Gi", "", onHost("n1")), n1) || MatchesNode(volume("there", "1Gi", "", onHost("n2")), n1) {
		t.Fatal("hostname affinity not honoured")
	}
	byName := volume("by-name", "1Gi", "")
	byName.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}},
		{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}},
	}}}
	if !MatchesNode(byName, n1) || MatchesNode(byName, hostNode("n2")) {
		t.Fatal("terms are ORed: matchFields term must select n1 only")
	}
	broken := volume("broken", "1Gi", "")
	broken.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "k", Operator: "Bogus"}}},
	}}}
	if MatchesNode(broken, n1) {
		t.Fatal("affinity whose terms all fail to parse must match no node")
	}
	empty := volume("empty", "1Gi", "")
	empty.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{}}
	if MatchesNode(empty, n1) {
		t.Fatal("required affinity without terms must match no node")
	}
}

func TestPick(t *testing.T) {
	c := claim("1Gi", "")
	cands := func(pvs ...*corev1.PersistentVolume) []Candidate {
		out, err := Candidates(c, pvs, Policy{})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	pick := func(cs []Candidate, node string, taken ...string) string {
		if pv := Pick(cs, hostNode(node), taken); pv != nil {
			return pv.Name
		}
		return ""
	}
	free := cands(volume("on-n2", "1Gi", "", onHost("n2")), volume("on-n1", "5Gi", "", onHost("n1")), volume("anywhere", "9Gi", ""))
	if got := pick(free, "n1"); got != "on-n1" {
		t.Fatalf("node affinity: picked %q", got)
	}
	if got := pick(free, "n1", "on-n1"); got != "anywhere" {
		t.Fatalf("taken volume offered again: picked %q", got)
	}
	if got := pick(free, "n1", "on-n1", "anywhere"); got != "" {
		t.Fatalf("all taken: picked %q", got)
	}
	pre := cands(volume("small", "1Gi", ""), volume("pre", "50Gi", "", onHost("n2"), claimRef("c", "")))
	if got := pick(pre, "n2"); got != "pre" {
		t.Fatalf("pre-bound on its node: picked %q", got)
	}
	if got := pick(pre, "n1"); got != "" {
		t.Fatalf("pre-bound elsewhere must mean no volume here, picked %q", got)
	}
	// Even when other candidates follow it.
	mixed := []Candidate{pre[0], {PV: volume("small", "1Gi", "")}}
	if got := pick(mixed, "n1"); got != "" {
		t.Fatalf("pre-bound elsewhere before a free volume: picked %q", got)
	}
}
