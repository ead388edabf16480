package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

func TestCandidateVolumesAndPick(t *testing.T) {
	block := corev1.PersistentVolumeBlock
	withLabels := func(pv *corev1.PersistentVolume, l map[string]string) *corev1.PersistentVolume {
		pv.Labels = l
		return pv
	}
	bound := testPV("taken", "fast", "1Gi", "")
	bound.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "other", UID: "x"}
	released := testPV("released", "fast", "1Gi", "")
	released.Status.Phase = corev1.VolumeReleased
	blockPV := testPV("block", "fast", "1Gi", "")
	blockPV.Spec.VolumeMode = &block
	pre := testPV("pre", "fast", "50Gi", "n2")
	pre.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "data"}

	tests := []struct {
		name     string
		claim    *corev1.PersistentVolumeClaim
		selector map[string]string
		pvs      []*corev1.PersistentVolume
		node     string
		want     string // "" for none
	}{
		{"smallest that fits", testClaim("data", "fast", "1Gi"),
			nil, []*corev1.PersistentVolume{testPV("big", "fast", "10Gi", ""), testPV("small", "fast", "2Gi", ""), testPV("tiny", "fast", "500Mi", "")}, "n1", "small"},
		{"class must match", testClaim("data", "fast", "1Gi"),
			nil, []*corev1.PersistentVolume{testPV("slow", "slow", "1Gi", "")}, "n1", ""},
		{"access modes must be offered", testClaim("data", "fast", "1Gi", corev1.ReadWriteMany),
			nil, []*corev1.PersistentVolume{testPV("rwo", "fast", "1Gi", "")}, "n1", ""},
		{"claimed, released and block volumes are skipped", testClaim("data", "fast", "1Gi"),
			nil, []*corev1.PersistentVolume{bound, released, blockPV}, "n1", ""},
		{"node affinity picks the node's volume", testClaim("data", "fast", "1Gi"),
			nil, []*corev1.PersistentVolume{testPV("on-n2", "fast", "1Gi", "n2"), testPV("on-n1", "fast", "5Gi", "n1")}, "n1", "on-n1"},
		{"selector", testClaim("data", "fast", "1Gi"), map[string]string{"tier": "gold"},
			[]*corev1.PersistentVolume{testPV("plain", "fast", "1Gi", ""), withLabels(testPV("gold", "fast", "9Gi", ""), map[string]string{"tier": "gold"})}, "n1", "gold"},
		{"pre-bound volume wins", testClaim("data", "fast", "1Gi"),
			nil, []*corev1.PersistentVolume{testPV("small", "fast", "1Gi", ""), pre}, "n2", "pre"},
		{"pre-bound volume elsewhere means none here", testClaim("data", "fast", "1Gi"),
			nil, []*corev1.PersistentVolume{testPV("small", "fast", "1Gi", ""), pre}, "n1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.selector != nil {
				tc.claim.Spec.Selector = &metav1.LabelSelector{MatchLabels: tc.selector}
			}
			got := pickVolume(candidateVolumes(tc.claim, tc.pvs), hostNode(tc.node), nil)
			name := ""
			if got != nil {
				name = got.Name
			}
			if name != tc.want {
				t.Fatalf("picked %q, want %q", name, tc.want)
			}
		})
	}
	// A volume one claim of the pod took is not offered to the next.
	cands := candidateVolumes(testClaim("data", "fast", "1Gi"), []*corev1.PersistentVolume{testPV("a", "fast", "1Gi", ""), testPV("b", "fast", "2Gi", "")})
	if got := pickVolume(cands, hostNode("n1"), []string{"a"}); got == nil || got.Name != "b" {
		t.Fatalf("with a taken: %v", got)
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
		{"bound PV on this node", &volumeState{bound: []boundClaim{{pv: boundPV, affinity: parsePVAffinity(boundPV)}}}, "n1", nil, 0, 0},
		{"bound PV elsewhere", &volumeState{bound: []boundClaim{{pv: boundPV, affinity: parsePVAffinity(boundPV)}}}, "n2", []string{reasonNodeConflict}, 0, 0},
		{"bound PV missing", &volumeState{bound: []boundClaim{{}}}, "n1", []string{reasonPVNotExist}, 0, 0},
		{"static match", &volumeState{delayed: []*delayedClaim{{claim: testClaim("c", "fast", "1Gi"), class: wffc("fast", notSupportedProvision),
			candidates: candidateVolumes(testClaim("c", "fast", "1Gi"), []*corev1.PersistentVolume{testPV("p", "fast", "1Gi", "n1")})}}}, "n1", nil, 1, 0},
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
