package csiprovisioner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// Upstream's event reasons.
const (
	reasonProvisioning          = "Provisioning"
	reasonProvisioningFailed    = "ProvisioningFailed"
	reasonProvisioningSucceeded = "ProvisioningSucceeded"
)

// Class parameters in the namespace reserved for Kubernetes: they are
// the provisioner's, never passed to the driver.
const (
	reservedPrefix = "csi.storage.k8s.io/"
	fsTypeKey      = reservedPrefix + "fstype"
)

// syncClaim provisions a volume for a claim the binder handed to a CSI
// driver this controller serves.
func (c *Controller) syncClaim(ctx context.Context, ns, name string) error {
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	driver := claimProvisioner(pvc)
	if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil || driver == "" {
		return nil
	}
	sc, err := c.classes.Get(volumematch.ClaimClass(pvc))
	if err != nil {
		return nil // the binder reports a missing class
	}
	if sc.Provisioner != driver {
		return nil
	}
	nodes, err := c.driverNodes(driver)
	if err != nil || len(nodes) == 0 {
		return err
	}
	if _, err := c.volumes.Get(volumeName(pvc)); err == nil {
		return nil // provisioned already; the binder binds it
	}
	if why := refusal(pvc); why != "" {
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonProvisioningFailed, why)
		return nil
	}
	selected := pvc.Annotations[annSelectedNode]
	waits := sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
	if waits && selected == "" {
		return nil // the scheduler has not chosen yet
	}
	fail := func(err error) error {
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonProvisioningFailed,
			fmt.Sprintf("failed to provision volume with StorageClass %q: %v", sc.Name, err))
		return fmt.Errorf("claim %s/%s: %w", ns, name, err)
	}
	_, clone := cloneSourceName(pvc)
	var source *corev1.PersistentVolume
	if clone {
		if source, err = c.cloneSource(pvc, driver); err != nil {
			return fail(err)
		}
	}
	candidates, topo, err := c.placement(sc, driver, nodes, selected)
	if err != nil {
		return fail(err)
	}
	req, err := createRequest(pvc, sc, topo)
	if err != nil {
		return fail(err)
	}
	if clone {
		req.VolumeContentSource = cloneContent(source)
	}
	secrets, err := resolveSecrets(sc, req.Name, pvc)
	if err != nil {
		return fail(err)
	}
	if req.Secrets, err = c.fetchSecret(ctx, secrets.provisioner); err != nil {
		return fail(err)
	}
	if clone {
		// Skiff cannot ask the driver for CLONE_VOLUME through the
		// kubelet: a driver without it says so in CreateVolume's error.
		if err := c.protectSource(ctx, pvc); err != nil {
			return fail(err)
		}
	}
	c.recorder.Event(pvc, corev1.EventTypeNormal, reasonProvisioning,
		fmt.Sprintf("External provisioner is provisioning volume for claim %q", ns+"/"+name))
	resp, node, err := c.createVolume(ctx, candidates, driver, req)
	if err != nil {
		return fail(err)
	}
	requested := req.GetCapacityRange().GetRequiredBytes()
	got := resp.GetVolume().GetCapacityBytes()
	if got == 0 {
		got = requested // the driver does not say: what was asked for
	}
	if got < requested {
		// As upstream: a volume too small is given back.
		derr := c.csi.DeleteVolume(ctx, node, driver, &csipb.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId(), Secrets: req.Secrets})
		if derr != nil {
			return fail(fmt.Errorf("created volume capacity %d less than requested capacity %d; deleting it failed: %v", got, requested, derr))
		}
		return fail(fmt.Errorf("created volume capacity %d less than requested capacity %d", got, requested))
	}
	if clone && resp.GetVolume().GetContentSource() == nil {
		// As upstream: without it the driver made a blank volume.
		derr := c.csi.DeleteVolume(ctx, node, driver, &csipb.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId(), Secrets: req.Secrets})
		if derr != nil {
			return fail(fmt.Errorf("volume content source missing; deleting the volume failed: %v", derr))
		}
		return fail(fmt.Errorf("volume content source missing"))
	}
	pv := c.newVolume(pvc, sc, driver, req, resp.GetVolume(), got, secrets)
	if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		// The storage exists: the next try finds it again (same name).
		return fail(fmt.Errorf("creating PersistentVolume: %w", err))
	}
	c.log.Info("provisioned volume", "claim", ns+"/"+name, "volume", pv.Name, "driver", driver, "node", node)
	c.recorder.Event(pvc, corev1.EventTypeNormal, reasonProvisioningSucceeded, fmt.Sprintf("Successfully provisioned volume %s", pv.Name))
	if clone {
		from, _ := cloneSourceName(pvc)
		if err := c.releaseSource(ctx, ns, from, string(pvc.UID)); err != nil {
			// The clone's binding brings the source back to syncProtection.
			c.log.Warn("releasing clone source", "claim", ns+"/"+from, "err", err)
		}
	}
	return nil
}

// refusal explains why a claim cannot be provisioned here ("" when it can).
func refusal(pvc *corev1.PersistentVolumeClaim) string {
	if _, clone := cloneSourceName(pvc); !clone && (pvc.Spec.DataSource != nil || pvc.Spec.DataSourceRef != nil) {
		return "claims with a VolumeSnapshot, volume populator or cross-namespace dataSource are not supported by Skiff's built-in CSI provisioner " +
			"(it clones claims only); annotate the CSIDriver " + ModeAnnotation + "=" + ModeExternal + " and deploy external-provisioner instead"
	}
	if pvc.Spec.Selector != nil {
		return "claim Selector is not supported"
	}
	if q, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || q.Sign() <= 0 {
		return "claim must request a positive storage size"
	}
	return ""
}

// volumeName is the volume's name (the PV and CreateVolume's name), as
// upstream's default prefix makes it; retries reuse it, so creation is
// idempotent.
func volumeName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

// placement returns the nodes to ask, in order, and the accessibility
// requirement. With a selected node, that node comes first, then nodes in
// the same topology, and the volume must be accessible from its topology.
// Without one, every node with the driver may be asked, and the volume
// must be accessible from one of their topologies (limited by the class's
// allowedTopologies).
func (c *Controller) placement(sc *storagev1.StorageClass, driver string, nodes map[string]storagev1.CSINodeDriver, selected string) ([]string, *csipb.TopologyRequirement, error) {
	names := slices.Sorted(maps.Keys(nodes))
	if selected != "" {
		d, ok := nodes[selected]
		if !ok {
			return nil, nil, fmt.Errorf("CSI driver %s is not registered on the selected node %s", driver, selected)
		}
		seg, err := c.nodeTopology(selected, d)
		if err != nil {
			return nil, nil, err
		}
		out := []string{selected}
		for _, n := range names {
			if n == selected {
				continue
			}
			if other, err := c.nodeTopology(n, nodes[n]); err == nil && maps.Equal(other, seg) {
				out = append(out, n)
			}
		}
		var req *csipb.TopologyRequirement
		if len(seg) > 0 {
			t := &csipb.Topology{Segments: seg}
			req = &csipb.TopologyRequirement{Requisite: []*csipb.Topology{t}, Preferred: []*csipb.Topology{t}}
		}
		return out, req, nil
	}
	var out []string
	var segs []map[string]string
	for _, n := range names {
		seg, err := c.nodeTopology(n, nodes[n])
		if err != nil || !allowed(sc, seg) {
			continue
		}
		out = append(out, n)
		if len(seg) > 0 && !slices.ContainsFunc(segs, func(s map[string]string) bool { return maps.Equal(s, seg) }) {
			segs = append(segs, seg)
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no node with CSI driver %s is in the class's allowedTopologies", driver)
	}
	var req *csipb.TopologyRequirement
	if len(segs) > 0 {
		req = &csipb.TopologyRequirement{}
		for _, s := range segs {
			req.Requisite = append(req.Requisite, &csipb.Topology{Segments: s})
			req.Preferred = append(req.Preferred, &csipb.Topology{Segments: s})
		}
	}
	return out, req, nil
}

// nodeTopology is the driver's topology segment on a node: its topology
// keys with the node's label values (nil for a driver without topology).
func (c *Controller) nodeTopology(name string, d storagev1.CSINodeDriver) (map[string]string, error) {
	if len(d.TopologyKeys) == 0 {
		return nil, nil
	}
	node, err := c.nodes.Get(name)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	seg := make(map[string]string, len(d.TopologyKeys))
	for _, k := range d.TopologyKeys {
		v, ok := node.Labels[k]
		if !ok {
			return nil, fmt.Errorf("node %s has no label %s, a topology key of CSI driver %s", name, k, d.Name)
		}
		seg[k] = v
	}
	return seg, nil
}

// allowed says whether a topology segment fits the class's
// allowedTopologies (any term; every expression of it).
func allowed(sc *storagev1.StorageClass, seg map[string]string) bool {
	if len(sc.AllowedTopologies) == 0 {
		return true
	}
	for _, term := range sc.AllowedTopologies {
		ok := true
		for _, e := range term.MatchLabelExpressions {
			if v, has := seg[e.Key]; !has || !slices.Contains(e.Values, v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// createRequest is CreateVolume's request for the claim.
func createRequest(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, topo *csipb.TopologyRequirement) (*csipb.CreateVolumeRequest, error) {
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	capRange := &csipb.CapacityRange{RequiredBytes: size.Value()}
	if limit, ok := pvc.Spec.Resources.Limits[corev1.ResourceStorage]; ok {
		capRange.LimitBytes = limit.Value()
	}
	params := map[string]string{}
	for k, v := range sc.Parameters {
		if !strings.HasPrefix(k, reservedPrefix) {
			params[k] = v
		}
	}
	caps, err := volumeCapabilities(pvc, sc)
	if err != nil {
		return nil, err
	}
	return &csipb.CreateVolumeRequest{
		Name:                      volumeName(pvc),
		CapacityRange:             capRange,
		VolumeCapabilities:        caps,
		Parameters:                params,
		AccessibilityRequirements: topo,
	}, nil
}

// accessModes maps the claim's access modes to CSI's.
var accessModes = map[corev1.PersistentVolumeAccessMode]csipb.VolumeCapability_AccessMode_Mode{
	corev1.ReadWriteOnce:    csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
	corev1.ReadOnlyMany:     csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY,
	corev1.ReadWriteMany:    csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER,
	corev1.ReadWriteOncePod: csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
}

// volumeCapabilities is one capability per access mode: a block device,
// or a filesystem of the class's fstype with its mount options.
func volumeCapabilities(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass) ([]*csipb.VolumeCapability, error) {
	var out []*csipb.VolumeCapability
	for _, m := range pvc.Spec.AccessModes {
		mode, ok := accessModes[m]
		if !ok {
			return nil, fmt.Errorf("unsupported access mode %q", m)
		}
		vc := &csipb.VolumeCapability{AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode}}
		if volumematch.VolumeMode(pvc.Spec.VolumeMode) == corev1.PersistentVolumeBlock {
			vc.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
		} else {
			vc.AccessType = &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{
				FsType: sc.Parameters[fsTypeKey], MountFlags: sc.MountOptions,
			}}
		}
		out = append(out, vc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("claim has no access modes")
	}
	return out, nil
}

// createVolume asks the candidate nodes in turn until one's driver
// answers; the driver's own error ends the round.
func (c *Controller) createVolume(ctx context.Context, candidates []string, driver string, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, string, error) {
	var lastErr error
	for _, node := range candidates {
		resp, err := c.csi.CreateVolume(ctx, node, driver, req)
		if err == nil {
			if resp.GetVolume().GetVolumeId() == "" {
				return nil, node, fmt.Errorf("CSI driver %s on node %s returned no volume ID", driver, node)
			}
			return resp, node, nil
		}
		if isDriverError(err) {
			return nil, node, err
		}
		lastErr = err
	}
	return nil, "", fmt.Errorf("%w (Skiff calls the controller service of %s through a plugin registered on a node; "+
		"if the driver's controller runs apart, deploy its external-provisioner and annotate its CSIDriver %s=%s)",
		lastErr, driver, ModeAnnotation, ModeExternal)
}

// newVolume is the PersistentVolume external-provisioner would make for
// the claim: bound to it (the binder completes the binding), pinned to
// the volume's accessible topology.
func (c *Controller) newVolume(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, driver string,
	req *csipb.CreateVolumeRequest, vol *csipb.Volume, capacity int64, secrets volumeSecrets) *corev1.PersistentVolume {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	attrs := map[string]string{}
	maps.Copy(attrs, vol.GetVolumeContext())
	attrs[provisionerIDKey] = c.identity + "-" + driver
	mode := volumematch.VolumeMode(pvc.Spec.VolumeMode)
	csiSource := &corev1.CSIPersistentVolumeSource{
		Driver: driver, VolumeHandle: vol.GetVolumeId(), VolumeAttributes: attrs,
		ControllerPublishSecretRef: secrets.controllerPublish,
		NodeStageSecretRef:         secrets.nodeStage,
		NodePublishSecretRef:       secrets.nodePublish,
		ControllerExpandSecretRef:  secrets.controllerExpand,
		NodeExpandSecretRef:        secrets.nodeExpand,
	}
	if mode == corev1.PersistentVolumeFilesystem {
		csiSource.FSType = sc.Parameters[fsTypeKey]
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        req.GetName(),
			Annotations: map[string]string{annProvisionedBy: driver},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: *resource.NewQuantity(capacity, resource.BinarySI)},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: csiSource},
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              sc.Name,
			MountOptions:                  sc.MountOptions,
			VolumeMode:                    &mode,
			NodeAffinity:                  nodeAffinity(vol.GetAccessibleTopology()),
		},
	}
	if reclaim == corev1.PersistentVolumeReclaimDelete {
		pv.Finalizers = []string{Finalizer}
	}
	if ref := secrets.provisioner; ref != nil {
		pv.Annotations[annDeletionSecretName] = ref.Name
		pv.Annotations[annDeletionSecretNamespace] = ref.Namespace
	}
	return pv
}

// nodeAffinity requires a node in one of the volume's topologies: a term
// per topology, an In expression per key.
func nodeAffinity(topos []*csipb.Topology) *corev1.VolumeNodeAffinity {
	var terms []corev1.NodeSelectorTerm
	for _, t := range topos {
		segs := t.GetSegments()
		if len(segs) == 0 {
			continue
		}
		keys := slices.Collect(maps.Keys(segs))
		sort.Strings(keys)
		var term corev1.NodeSelectorTerm
		for _, k := range keys {
			term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{
				Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{segs[k]},
			})
		}
		terms = append(terms, term)
	}
	if len(terms) == 0 {
		return nil
	}
	return &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: terms}}
}
