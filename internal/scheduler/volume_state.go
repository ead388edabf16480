package scheduler

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// volumeState is what the volume plugins learn about a pod once per
// scheduling attempt (upstream's PreFilter of VolumeRestrictions,
// NodeVolumeLimits, VolumeBinding and VolumeZone). It is nil for pods
// without claims or conflict-prone inline volumes, which keeps the node
// loop free of volume work for them.
type volumeState struct {
	bound   []boundClaim
	delayed []*delayedClaim // WaitForFirstConsumer claims not bound yet, smallest request first
	// ReadWriteOncePod claims already used by placed pods: the total, and
	// per node, so a preemption trial can subtract its victims.
	rwopClaims   []string
	rwopTotal    int
	rwopPerNode  map[string]int
	csiNew       map[string]string // unique volume name -> CSI driver, for NodeVolumeLimits
	zones        []zoneConstraint
	diskVolumes  []corev1.Volume // inline disks that conflict when shared (VolumeRestrictions)
	hasNodeLimit bool            // csiNew is not empty
}

// boundClaim is a claim the PV controller finished binding.
type boundClaim struct {
	claim    *corev1.PersistentVolumeClaim
	pv       *corev1.PersistentVolume // nil when the PV does not exist
	affinity *volumematch.NodeAffinity
}

// delayedClaim is an unbound WaitForFirstConsumer claim with what a node
// needs to decide whether it can take it.
type delayedClaim struct {
	claim        *corev1.PersistentVolumeClaim
	class        *storagev1.StorageClass
	selectedNode string // already chosen by an earlier attempt
	candidates   []volumematch.Candidate
	size         int64
	// checkCapacity: the class's CSI driver publishes storage capacity,
	// so some pool must reach the node.
	checkCapacity bool
	pools         []capacityPool
}

// Upstream's reasons, word for word.
const (
	reasonImmediateUnbound = "pod has unbound immediate PersistentVolumeClaims"
	reasonNodeConflict     = "node(s) had volume node affinity conflict"
	reasonBindConflict     = "node(s) didn't find available persistent volumes to bind"
	reasonNotEnoughSpace   = "node(s) did not have enough free storage"
	reasonPVNotExist       = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	reasonRWOPConflict     = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
	reasonDiskConflict     = "node(s) had no available disk"
	reasonMaxVolumeCount   = "node(s) exceed max volume count"
	reasonZoneConflict     = "node(s) had no available volume zone"
)

// needsVolumeState is the cheap test that keeps plain pods on the fast
// path: only claims and shared inline disks involve the volume plugins.
func needsVolumeState(pod *corev1.Pod) bool {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if v.PersistentVolumeClaim != nil || v.Ephemeral != nil || v.CSI != nil || isConflictDisk(v) {
			return true
		}
	}
	return false
}

func isConflictDisk(v *corev1.Volume) bool {
	return v.GCEPersistentDisk != nil || v.AWSElasticBlockStore != nil || v.ISCSI != nil || v.RBD != nil
}

// podClaimName is the claim a volume uses: its own, or the one the
// ephemeral volume controller creates as <pod>-<volume>.
func podClaimName(pod *corev1.Pod, v *corev1.Volume) (name string, ephemeral bool) {
	switch {
	case v.PersistentVolumeClaim != nil:
		return v.PersistentVolumeClaim.ClaimName, false
	case v.Ephemeral != nil:
		return pod.Name + "-" + v.Name, true
	}
	return "", false
}

// preFilter builds a pod's volumeState. A non-empty message means no node
// can take the pod until its claims change; it is upstream's PreFilter
// message for the first claim at fault.
func (b *volumeBinder) preFilter(pod *corev1.Pod, c *cache) (*volumeState, string) {
	vs := &volumeState{}
	seen := map[string]bool{}
	immediate := false
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if isConflictDisk(v) {
			vs.diskVolumes = append(vs.diskVolumes, *v)
		}
		if v.CSI != nil {
			b.addInlineCSI(vs, pod, v)
		}
		name, ephemeral := podClaimName(pod, v)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		pvc, err := b.claim(pod.Namespace, name)
		switch {
		case err != nil && ephemeral:
			return nil, fmt.Sprintf("waiting for ephemeral volume controller to create the persistentvolumeclaim %q", name)
		case err != nil:
			return nil, fmt.Sprintf("persistentvolumeclaim %q not found", name)
		case pvc.Status.Phase == corev1.ClaimLost:
			return nil, fmt.Sprintf("persistentvolumeclaim %q bound to non-existent persistentvolume %q", pvc.Name, pvc.Spec.VolumeName)
		case pvc.DeletionTimestamp != nil:
			return nil, fmt.Sprintf("persistentvolumeclaim %q is being deleted", pvc.Name)
		case ephemeral && !metav1.IsControlledBy(pvc, pod):
			return nil, fmt.Sprintf("PVC %s/%s was not created for pod %s/%s (pod is not owner)", pvc.Namespace, pvc.Name, pod.Namespace, pod.Name)
		}
		if hasMode(pvc, corev1.ReadWriteOncePod) {
			vs.rwopClaims = append(vs.rwopClaims, claimKey(pvc.Namespace, pvc.Name))
		}
		b.addClaimCSI(vs, pvc)
		if claimFullyBound(pvc) {
			bc := boundClaim{claim: pvc}
			if pv, err := b.volume(pvc.Spec.VolumeName); err == nil {
				bc.pv, bc.affinity = pv, volumematch.ParseNodeAffinity(pv)
				vs.zones = append(vs.zones, pvZones(pv)...)
			}
			vs.bound = append(vs.bound, bc)
			continue
		}
		class := b.storageClass(volumematch.ClaimClass(pvc))
		if pvc.Spec.VolumeName != "" || class == nil || class.VolumeBindingMode == nil ||
			*class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			// Immediate claims (and pre-bound ones) are the PV
			// controller's to bind before the pod can be placed.
			immediate = true
			continue
		}
		vs.delayed = append(vs.delayed, b.delayed(pvc, class))
	}
	if immediate {
		return nil, reasonImmediateUnbound
	}
	sort.SliceStable(vs.delayed, func(i, j int) bool { return vs.delayed[i].size < vs.delayed[j].size })
	if len(vs.rwopClaims) > 0 {
		vs.rwopTotal, vs.rwopPerNode = c.claimUsers(vs.rwopClaims)
	}
	vs.hasNodeLimit = len(vs.csiNew) > 0
	return vs, ""
}

func hasMode(pvc *corev1.PersistentVolumeClaim, m corev1.PersistentVolumeAccessMode) bool {
	for _, have := range pvc.Spec.AccessModes {
		if have == m {
			return true
		}
	}
	return false
}

func (b *volumeBinder) delayed(pvc *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) *delayedClaim {
	req, hasReq := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	d := &delayedClaim{
		claim: pvc, class: class, size: req.Value(),
		selectedNode: pvc.Annotations[annSelectedNode],
	}
	if d.selectedNode == "" {
		d.candidates = volumeCandidates(pvc, b.volumesOfClass(class.Name))
	}
	if !hasReq || class.Provisioner == "" || class.Provisioner == notSupportedProvision {
		return d
	}
	// Capacity is only checked for CSI drivers that opt into it.
	if drv, err := b.csiDrivers.Get(class.Provisioner); err == nil && drv.Spec.StorageCapacity != nil && *drv.Spec.StorageCapacity {
		all, _ := b.capacities.List(labels.Everything())
		d.checkCapacity = true
		d.pools = sufficientPools(all, class.Name, d.size)
	}
	return d
}

// addClaimCSI records the CSI volume a claim stands for: its PV's driver
// and handle, or, before binding, the class's provisioner and a handle
// unique to the claim (upstream counts unbound claims the same way).
func (b *volumeBinder) addClaimCSI(vs *volumeState, pvc *corev1.PersistentVolumeClaim) {
	driver, handle := b.claimCSI(pvc)
	if driver == "" {
		return
	}
	if vs.csiNew == nil {
		vs.csiNew = map[string]string{}
	}
	vs.csiNew[driver+"/"+handle] = driver
}

func (b *volumeBinder) claimCSI(pvc *corev1.PersistentVolumeClaim) (driver, handle string) {
	if pvc.Spec.VolumeName != "" {
		pv, err := b.volume(pvc.Spec.VolumeName)
		if err != nil || pv.Spec.CSI == nil {
			return "", ""
		}
		return pv.Spec.CSI.Driver, pv.Spec.CSI.VolumeHandle
	}
	class := b.storageClass(volumematch.ClaimClass(pvc))
	if class == nil || class.Provisioner == "" {
		return "", ""
	}
	return class.Provisioner, "unbound:" + pvc.Namespace + "/" + pvc.Name
}

func (b *volumeBinder) addInlineCSI(vs *volumeState, pod *corev1.Pod, v *corev1.Volume) {
	if vs.csiNew == nil {
		vs.csiNew = map[string]string{}
	}
	vs.csiNew[v.CSI.Driver+"/inline:"+string(pod.UID)+"/"+v.Name] = v.CSI.Driver
}

// zoneConstraint is one topology label of a bound PV: the node must carry
// the key with one of the values.
type zoneConstraint struct {
	key    string
	values []string
}

var zoneLabels = []string{
	corev1.LabelTopologyZone, corev1.LabelTopologyRegion,
	corev1.LabelFailureDomainBetaZone, corev1.LabelFailureDomainBetaRegion,
}

// gaZoneLabel maps the beta labels to their GA names, as upstream falls
// back to them on nodes.
var gaZoneLabel = map[string]string{
	corev1.LabelFailureDomainBetaZone:   corev1.LabelTopologyZone,
	corev1.LabelFailureDomainBetaRegion: corev1.LabelTopologyRegion,
}

func pvZones(pv *corev1.PersistentVolume) []zoneConstraint {
	var out []zoneConstraint
	for _, k := range zoneLabels {
		if v, ok := pv.Labels[k]; ok && v != "" {
			// Multi-zone volumes list zones separated by "__".
			out = append(out, zoneConstraint{key: k, values: strings.Split(v, "__")})
		}
	}
	return out
}
