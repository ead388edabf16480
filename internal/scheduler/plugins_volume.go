package scheduler

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// The volume filter plugins. Each reads the pod's volumeState, computed
// once per attempt; the scheduler only runs them for pods that have one.

// volumeRestrictions rejects nodes where a ReadWriteOncePod claim of the
// pod is in use (anywhere in the cluster, as upstream), or where an
// inline disk of the pod is already mounted by another pod.
type volumeRestrictions struct{}

func (volumeRestrictions) Name() string { return "VolumeRestrictions" }

func (volumeRestrictions) Filter(s *cycleState, ni *nodeInfo) []string {
	vs := s.volumes
	if vs == nil {
		return nil
	}
	if vs.rwopTotal > 0 {
		// ni may be a preemption trial without some of the node's pods.
		onNode := 0
		for _, k := range vs.rwopClaims {
			onNode += ni.claims[k]
		}
		if vs.rwopTotal-vs.rwopPerNode[ni.node.Name]+onNode > 0 {
			return []string{reasonRWOPConflict}
		}
	}
	for i := range vs.diskVolumes {
		for _, pi := range ni.pods {
			for j := range pi.pod.Spec.Volumes {
				if disksConflict(&vs.diskVolumes[i], &pi.pod.Spec.Volumes[j]) {
					return []string{reasonDiskConflict}
				}
			}
		}
	}
	return nil
}

// disksConflict is upstream's isVolumeConflict: the same disk mounted
// twice, unless both mounts are read-only where the type allows sharing.
func disksConflict(v, e *corev1.Volume) bool {
	switch {
	case v.GCEPersistentDisk != nil && e.GCEPersistentDisk != nil:
		a, b := v.GCEPersistentDisk, e.GCEPersistentDisk
		return a.PDName == b.PDName && !(a.ReadOnly && b.ReadOnly)
	case v.AWSElasticBlockStore != nil && e.AWSElasticBlockStore != nil:
		return v.AWSElasticBlockStore.VolumeID == e.AWSElasticBlockStore.VolumeID
	case v.ISCSI != nil && e.ISCSI != nil:
		return v.ISCSI.IQN == e.ISCSI.IQN && !(v.ISCSI.ReadOnly && e.ISCSI.ReadOnly)
	case v.RBD != nil && e.RBD != nil:
		a, b := v.RBD, e.RBD
		shared := slices.ContainsFunc(a.CephMonitors, func(m string) bool { return slices.Contains(b.CephMonitors, m) })
		return shared && a.RBDPool == b.RBDPool && a.RBDImage == b.RBDImage && !(a.ReadOnly && b.ReadOnly)
	}
	return false
}

// nodeVolumeLimits keeps the CSI volumes on a node within what each
// driver's CSINode entry allows.
type nodeVolumeLimits struct{ b *volumeBinder }

func (nodeVolumeLimits) Name() string { return "NodeVolumeLimits" }

func (p nodeVolumeLimits) Filter(s *cycleState, ni *nodeInfo) []string {
	vs := s.volumes
	if vs == nil || !vs.hasNodeLimit {
		return nil
	}
	csiNode, err := p.b.csiNodes.Get(ni.node.Name)
	if err != nil {
		return nil // no CSINode, no limits (upstream tolerates it too)
	}
	limits := map[string]int{}
	for _, d := range csiNode.Spec.Drivers {
		if d.Allocatable != nil && d.Allocatable.Count != nil {
			limits[d.Name] = int(*d.Allocatable.Count)
		}
	}
	limited := false
	for _, drv := range vs.csiNew {
		if _, ok := limits[drv]; ok {
			limited = true
			break
		}
	}
	if !limited {
		return nil
	}
	// Volumes the node's pods already use; a volume shared with them is
	// not counted twice.
	attached := map[string]string{}
	for _, pi := range ni.pods {
		p.b.podCSIVolumes(pi.pod, attached)
	}
	used := map[string]int{}
	for _, drv := range attached {
		used[drv]++
	}
	extra := map[string]int{}
	for name, drv := range vs.csiNew {
		if _, ok := attached[name]; !ok {
			extra[drv]++
		}
	}
	for drv, n := range extra {
		if limit, ok := limits[drv]; ok && used[drv]+n > limit {
			return []string{reasonMaxVolumeCount}
		}
	}
	return nil
}

// podCSIVolumes adds the CSI volumes of a placed pod to into.
func (b *volumeBinder) podCSIVolumes(pod *corev1.Pod, into map[string]string) {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if v.CSI != nil {
			into[v.CSI.Driver+"/inline:"+string(pod.UID)+"/"+v.Name] = v.CSI.Driver
			continue
		}
		name, _ := podClaimName(pod, v)
		if name == "" {
			continue
		}
		pvc, err := b.claim(pod.Namespace, name)
		if err != nil {
			continue
		}
		if drv, handle := b.claimCSI(pvc); drv != "" {
			into[drv+"/"+handle] = drv
		}
	}
}

// volumeBinding checks bound claims' PV node affinity and finds, per node,
// PVs or provisioning for the pod's WaitForFirstConsumer claims.
type volumeBinding struct{ b *volumeBinder }

func (volumeBinding) Name() string { return "VolumeBinding" }

func (p volumeBinding) Filter(s *cycleState, ni *nodeInfo) []string {
	if s.volumes == nil {
		return nil
	}
	_, reasons := s.volumes.decide(ni.node)
	return reasons
}

// volumeDecision is how a node would satisfy a pod's delayed claims.
type volumeDecision struct {
	static    []staticBinding
	provision []*corev1.PersistentVolumeClaim
}

type staticBinding struct {
	claim *corev1.PersistentVolumeClaim
	pv    *corev1.PersistentVolume
}

// decide is upstream's FindPodVolumes for one node; reasons are empty when
// the node works.
func (vs *volumeState) decide(n *corev1.Node) (*volumeDecision, []string) {
	nodeConflict, pvMissing := false, false
	for _, bc := range vs.bound {
		if bc.pv == nil {
			pvMissing = true
			break
		}
		if !bc.affinity.Matches(n) {
			nodeConflict = true
			break
		}
	}
	d := &volumeDecision{}
	bindConflict, noSpace := false, false
	var taken []string
	var toProvision []*delayedClaim
	for _, dc := range vs.delayed {
		if dc.selectedNode != "" {
			if dc.selectedNode != n.Name {
				bindConflict = true
				break
			}
			toProvision = append(toProvision, dc)
			continue
		}
		if pv := volumematch.Pick(dc.candidates, n, taken); pv != nil {
			taken = append(taken, pv.Name)
			d.static = append(d.static, staticBinding{claim: dc.claim, pv: pv})
			continue
		}
		toProvision = append(toProvision, dc)
	}
	if !bindConflict {
		for _, dc := range toProvision {
			if dc.class.Provisioner == "" || dc.class.Provisioner == notSupportedProvision ||
				!matchesTopology(dc.class.AllowedTopologies, n.Labels) {
				bindConflict = true
				break
			}
			if dc.checkCapacity && !slices.ContainsFunc(dc.pools, func(p capacityPool) bool { return p.selector.Matches(labels.Set(n.Labels)) }) {
				noSpace = true
				break
			}
			d.provision = append(d.provision, dc.claim)
		}
	}
	var reasons []string
	if nodeConflict {
		reasons = append(reasons, reasonNodeConflict)
	}
	if bindConflict {
		reasons = append(reasons, reasonBindConflict)
	}
	if noSpace {
		reasons = append(reasons, reasonNotEnoughSpace)
	}
	if pvMissing {
		reasons = append(reasons, reasonPVNotExist)
	}
	if reasons != nil {
		return nil, reasons
	}
	return d, nil
}

// volumeZone keeps pods on nodes in the zones and regions their bound
// PVs are labelled with.
type volumeZone struct{}

func (volumeZone) Name() string { return "VolumeZone" }

func (volumeZone) Filter(s *cycleState, ni *nodeInfo) []string {
	if s.volumes == nil || len(s.volumes.zones) == 0 {
		return nil
	}
	nl := ni.node.Labels
	constrained := false
	for _, k := range zoneLabels {
		if _, ok := nl[k]; ok {
			constrained = true
			break
		}
	}
	if !constrained {
		return nil // a node without zone labels takes any volume
	}
	for _, z := range s.volumes.zones {
		v, ok := nl[z.key]
		if !ok {
			v, ok = nl[gaZoneLabel[z.key]]
		}
		if !ok || !slices.Contains(z.values, v) {
			return []string{reasonZoneConflict}
		}
	}
	return nil
}
