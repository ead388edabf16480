package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

func testClaim(name, class, size string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &class,
			AccessModes:      modes,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
}

// testPV is an Available PV; host, when set, pins it to that node.
func testPV(name, class, size, host string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName: class,
			AccessModes:      modes,
			Capacity:         corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name},
			},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}
	if host != "" {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{host}}},
		}}}}
	}
	return pv
}

func hostNode(name string) *corev1.Node {
	return node(name, "4", "4Gi", map[string]string{"kubernetes.io/hostname": name})
}

// The matching rules are tested in volumematch; these cases pin the
// scheduler's own policy.
func TestVolumeCandidates(t *testing.T) {
	many := testPV("many", "fast", "1Gi", "", corev1.ReadWriteOnce, corev1.ReadOnlyMany)
	pending := testPV("pending", "fast", "1Gi", "")
	pending.Status.Phase = corev1.VolumePending
	got := volumeCandidates(testClaim("data", "fast", "1Gi"), []*corev1.PersistentVolume{testPV("one", "fast", "5Gi", ""), many, pending})
	var names []string
	for _, c := range got {
		names = append(names, c.PV.Name)
	}
	// Smallest first whatever the access modes; volumes the PV controller
	// has not marked Available yet are left alone.
	if want := []string{"many", "one"}; !slices.Equal(names, want) {
		t.Fatalf("candidates %q, want %q", names, want)
	}

	bad := testClaim("data", "fast", "1Gi")
	bad.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}
	if got := volumeCandidates(bad, []*corev1.PersistentVolume{testPV("a", "fast", "1Gi", "")}); got != nil {
		t.Fatalf("invalid selector matched %d volumes", len(got))
	}
}

// Claims of one pod decided on one node never share a volume, and a claim
// pre-bound to another node's volume rules the node out.
func TestDecideStaticBindings(t *testing.T) {
	pvs := []*corev1.PersistentVolume{testPV("a", "fast", "1Gi", ""), testPV("b", "fast", "2Gi", "")}
	class := wffc("fast", notSupportedProvision)
	vs := &volumeState{delayed: []*delayedClaim{
		{claim: testClaim("one", "fast", "1Gi"), class: class, candidates: volumeCandidates(testClaim("one", "fast", "1Gi"), pvs)},
		{claim: testClaim("two", "fast", "1Gi"), class: class, candidates: volumeCandidates(testClaim("two", "fast", "1Gi"), pvs)},
	}}
	d, reasons := vs.decide(hostNode("n1"))
	if reasons != nil || len(d.static) != 2 || d.static[0].pv.Name != "a" || d.static[1].pv.Name != "b" {
		t.Fatalf("reasons %q, static %+v", reasons, d.static)
	}

	pre := testPV("pre", "fast", "50Gi", "n2")
	pre.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "data"}
	claim := testClaim("data", "fast", "1Gi")
	vs = &volumeState{delayed: []*delayedClaim{{claim: claim, class: class,
		candidates: volumeCandidates(claim, []*corev1.PersistentVolume{testPV("small", "fast", "1Gi", ""), pre})}}}
	if _, reasons := vs.decide(hostNode("n1")); !slices.Equal(reasons, []string{reasonBindConflict}) {
		t.Fatalf("pre-bound elsewhere: reasons %q", reasons)
	}
	if d, reasons := vs.decide(hostNode("n2")); reasons != nil || len(d.static) != 1 || d.static[0].pv.Name != "pre" {
		t.Fatalf("pre-bound here: reasons %q, decision %+v", reasons, d)
	}
}

func wffc(name, provisioner string) *storagev1.StorageClass {
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner, VolumeBindingMode: &mode}
}

func TestDecideReasons(t *testing.T) {
	gi := resource.MustParse("1Gi")
	boundPV := testPV("pv-n1", "fast", "1Gi", "n1")
	zoneSel := &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "a"}}
	tests := []struct {
		name      string
		vs        *volumeState
		node      string
		want      []string
		static    int
		provision int
	}{
		{"bound PV on this node", &volumeState{bound: []boundClaim{{pv: boundPV, affinity: volumematch.ParseNodeAffinity(boundPV)}}}, "n1", nil, 0, 0},
		{"bound PV elsewhere", &volumeState{bound: []boundClaim{{pv: boundPV, affinity: volumematch.ParseNodeAffinity(boundPV)}}}, "n2", []string{reasonNodeConflict}, 0, 0},
		{"bound PV missing", &volumeState{bound: []boundClaim{{}}}, "n1", []string{reasonPVNotExist}, 0, 0},
		{"static match", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", notSupportedProvision),
			candidates: volumeCandidates(testClaim("c", "fast", "1Gi"), []*corev1.PersistentVolume{testPV("p", "fast", "1Gi", "n1")})}}}, "n1", nil, 1, 0},
		{"no volume, no provisioner", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", notSupportedProvision)}}},
			"n1", []string{reasonBindConflict}, 0, 0},
		{"provision", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", "skiff.dev/local-path")}}}, "n1", nil, 0, 1},
		{"selected elsewhere", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", "p"), selectedNode: "n2"}}},
			"n1", []string{reasonBindConflict}, 0, 0},
		{"capacity missing", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", "csi"), checkCapacity: true,
			pools: sufficientPools([]*storagev1.CSIStorageCapacity{{StorageClassName: "fast", NodeTopology: zoneSel, Capacity: &gi}}, "fast", 2<<30)}}},
			"n1", []string{reasonNotEnoughSpace}, 0, 0},
		{"capacity in the node's zone", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", "csi"), checkCapacity: true,
			pools: sufficientPools([]*storagev1.CSIStorageCapacity{{StorageClassName: "fast", NodeTopology: zoneSel, Capacity: &gi}}, "fast", 1<<30)}}},
			"n1", nil, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := hostNode(tc.node)
			n.Labels["zone"] = "a"
			d, reasons := tc.vs.decide(n)
			if !slices.Equal(reasons, tc.want) {
				t.Fatalf("reasons %q, want %q", reasons, tc.want)
			}
			if tc.want == nil && (len(d.static) != tc.static || len(d.provision) != tc.provision) {
				t.Fatalf("decision %d static %d provision, want %d and %d", len(d.static), len(d.provision), tc.static, tc.provision)
			}
		})
	}
}

func TestVolumeFilters(t *testing.T) {
	rwop := &volumeState{rwopClaims: []string{"default/c"}, rwopTotal: 1, rwopPerNode: map[string]int{"n1": 1}}
	user := pod("user", "", "")
	user.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}
	n1 := newNodeInfo(hostNode("n1"))
	n1.addPod(&podInfo{pod: user})
	st := &cycleState{pod: pod("p", "", ""), volumes: rwop}
	if r := (volumeRestrictions{}).Filter(st, newNodeInfo(hostNode("n2"))); !slices.Equal(r, []string{reasonRWOPConflict}) {
		t.Fatalf("other node: %v", r)
	}
	if r := (volumeRestrictions{}).Filter(st, n1); !slices.Equal(r, []string{reasonRWOPConflict}) {
		t.Fatalf("user's node: %v", r)
	}
	// A preemption trial without the user frees the claim.
	if r := (volumeRestrictions{}).Filter(st, newNodeInfo(hostNode("n1"))); r != nil {
		t.Fatalf("trial without the user: %v", r)
	}

	disk := corev1.Volume{Name: "d", VolumeSource: corev1.VolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{PDName: "pd"}}}
	holder := pod("holder", "", "")
	holder.Spec.Volumes = []corev1.Volume{disk}
	n1.addPod(&podInfo{pod: holder})
	st = &cycleState{pod: pod("p", "", ""), volumes: &volumeState{diskVolumes: []corev1.Volume{disk}}}
	if r := (volumeRestrictions{}).Filter(st, n1); !slices.Equal(r, []string{reasonDiskConflict}) {
		t.Fatalf("disk conflict: %v", r)
	}

	zoned := testPV("z", "fast", "1Gi", "")
	zoned.Labels = map[string]string{corev1.LabelTopologyZone: "a__b"}
	st = &cycleState{pod: pod("p", "", ""), volumes: &volumeState{zones: pvZones(zoned)}}
	for zone, want := range map[string][]string{"a": nil, "b": nil, "c": {reasonZoneConflict}, "": nil} {
		n := hostNode("n")
		if zone != "" {
			n.Labels[corev1.LabelTopologyZone] = zone
		}
		if r := (volumeZone{}).Filter(st, newNodeInfo(n)); !slices.Equal(r, want) {
			t.Fatalf("zone %q: %v, want %v", zone, r, want)
		}
	}
}

func TestDiagnosisPreFilterMessage(t *testing.T) {
	d := &diagnosis{nodes: 3, preFilter: reasonImmediateUnbound}
	if got, want := d.message(), "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

func TestNeedsVolumeState(t *testing.T) {
	p := pod("p", "", "")
	p.Spec.Volumes = []corev1.Volume{{Name: "e", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	if needsVolumeState(p) {
		t.Fatal("emptyDir pod takes the volume path")
	}
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "c", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}})
	if !needsVolumeState(p) {
		t.Fatal("claim pod skips the volume path")
	}
}
