package csi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// callTimeout bounds one node call to a driver (upstream: 2 minutes).
const callTimeout = 2 * time.Minute

// SetUpPersistent mounts a claim's CSI PersistentVolume for the pod and
// returns the host path to bind into its containers; readOnly is the
// pod's claim reference flag. It is cheap once the volume is published.
func (m *Manager) SetUpPersistent(ctx context.Context, pod *v1.Pod, volume string, pv *v1.PersistentVolume, readOnly bool) (string, error) {
	if err := checkMode(volume, pv, v1.PersistentVolumeFilesystem); err != nil {
		return "", err
	}
	s, err := persistentSpec(pv, readOnly)
	if err != nil {
		return "", err
	}
	return m.setUp(ctx, pod, volume, s)
}

// SetUpEphemeral mounts an inline csi volume of the pod.
func (m *Manager) SetUpEphemeral(ctx context.Context, pod *v1.Pod, volume string, src *v1.CSIVolumeSource) (string, error) {
	return m.setUp(ctx, pod, volume, ephemeralSpec(pod, volume, src))
}

func (m *Manager) setUp(ctx context.Context, pod *v1.Pod, volume string, s *volumeSpec) (string, error) {
	dir := m.PodVolumeDir(pod.UID, volume)
	target := s.target(dir)
	if r, err := readRecord(dir); err == nil && r.Published {
		// Mounted: a failed republish leaves the volume as it is.
		if m.republishDue(dir) {
			if err := m.publish(ctx, pod, s, dir, true); err != nil {
				m.republishFailed(pod, volume, err)
			}
		}
		return target, nil
	}
	if err := m.publish(ctx, pod, s, dir, false); err != nil {
		return "", err
	}
	return target, nil
}

// publish stages (when the driver stages) and publishes the volume in
// dir. With republish the volume is published already and is published
// again, with fresh tokens, only if its driver requires republishing.
func (m *Manager) publish(ctx context.Context, pod *v1.Pod, s *volumeSpec, dir string, republish bool) error {
	target := s.target(dir)
	d, err := m.drivers.get(s.driver)
	if err != nil {
		return err
	}
	obj, err := m.csiDriver(ctx, s.driver)
	if err != nil {
		return err
	}
	if republish && !requiresRepublish(obj) {
		m.notePublished(dir, false)
		return nil
	}
	mode := storagev1.VolumeLifecyclePersistent
	if s.ephemeral {
		mode = storagev1.VolumeLifecycleEphemeral
	}
	if !supportsMode(obj, mode) {
		return fmt.Errorf("CSI driver %s does not support the %s volume lifecycle mode", s.driver, mode)
	}
	var publishCtx map[string]string
	if !s.ephemeral && attachRequired(obj) {
		// A republished volume was reported in use before its first publish.
		if !republish {
			if err := m.reportInUse(ctx, dir, s); err != nil {
				return err
			}
		}
		if publishCtx, err = m.publishContext(ctx, s); err != nil {
			return err
		}
	}
	// Before anything is mounted: a token that cannot be had fails the
	// set-up cleanly.
	volCtx, err := m.withTokens(ctx, volumeContext(s, pod, podInfoOnMount(obj)), pod, obj)
	if err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	multiWriter, err := d.capable(callCtx, csipb.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER)
	if err != nil {
		return err
	}
	capability := s.capability(multiWriter)
	fsGroup, changePolicy := podFSGroup(pod)
	if s.block {
		fsGroup = nil // a device has no files to own (upstream: no fsGroup)
	}
	delegate := false // the driver applies the fsGroup when it mounts
	if fsGroup != nil {
		if delegate, err = d.capable(callCtx, csipb.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP); err != nil {
			return err
		}
	}
	if delegate {
		capability.GetMount().VolumeMountGroup = strconv.FormatInt(*fsGroup, 10)
	}

	unlock := m.locks.lock(s.driver + "^" + s.handle)
	defer unlock()
	staging := ""
	if !s.ephemeral {
		if staging, err = m.stage(callCtx, d, s, publishCtx, capability); err != nil {
			return err
		}
	}
	// Recorded before the call, so teardown unpublishes even a publish
	// that failed half-way.
	rec := s.record()
	rec.StagingPath = staging
	if !republish {
		if err := writeRecord(dir, rec); err != nil {
			return fmt.Errorf("record CSI volume: %w", err)
		}
	}
	if s.block {
		// The CO makes the target's directory, the driver the file.
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return fmt.Errorf("publish directory: %w", err)
		}
	}
	secrets, err := m.secretData(ctx, s.publishSecret)
	if err != nil {
		return err
	}
	_, err = d.node.NodePublishVolume(callCtx, &csipb.NodePublishVolumeRequest{
		VolumeId:          s.handle,
		PublishContext:    publishCtx,
		StagingTargetPath: staging,
		TargetPath:        target,
		VolumeCapability:  capability,
		Readonly:          s.readOnly,
		Secrets:           secrets,
		VolumeContext:     volCtx,
	})
	if err != nil {
		return fmt.Errorf("NodePublishVolume: %w", err)
	}
	// Before the volume counts as published, so a failed walk is retried
	// by the next sync (NodePublishVolume is idempotent).
	if fsGroup != nil && !delegate && s.kubeletAppliesFSGroup(fsGroupPolicy(obj)) {
		if err := setVolumeOwnership(m.log, target, *fsGroup, changePolicy); err != nil {
			return err
		}
	}
	m.notePublished(dir, requiresRepublish(obj))
	if republish {
		return nil
	}
	rec.Published = true
	if err := writeRecord(dir, rec); err != nil {
		return fmt.Errorf("record CSI volume: %w", err)
	}
	return nil
}

// reportInUse records that the pod wants an attachable volume and has the
// node's status list it in volumesInUse before anything is mounted: as
// upstream, the attach/detach controller then never detaches a volume
// while it may be mounted.
func (m *Manager) reportInUse(ctx context.Context, dir string, s *volumeSpec) error {
	if _, err := readRecord(dir); err != nil {
		if err := writeRecord(dir, s.record()); err != nil {
			return fmt.Errorf("record CSI volume: %w", err)
		}
	}
	if m.cfg.ReportInUse == nil {
		return nil
	}
	if err := m.cfg.ReportInUse(ctx); err != nil {
		return fmt.Errorf("report volume %s in use: %w", UniqueName(s.driver, s.handle), err)
	}
	return nil
}

// stage calls NodeStageVolume once per node for drivers that stage, and
// returns the staging path ("" for drivers that do not). The caller holds
// the volume's lock.
func (m *Manager) stage(ctx context.Context, d *driver, s *volumeSpec, publishCtx map[string]string, capability *csipb.VolumeCapability) (string, error) {
	stages, err := d.capable(ctx, csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME)
	if err != nil || !stages {
		return "", err
	}
	path, recDir := m.stagingPaths(s)
	if r, err := readRecord(recDir); err == nil && r.Published {
		return path, nil
	}
	if err := os.MkdirAll(path, 0o750); err != nil {
		return "", fmt.Errorf("staging path: %w", err)
	}
	rec := &volumeRecord{Driver: s.driver, Handle: s.handle, Block: s.block, StagingPath: path}
	if err := writeRecord(recDir, rec); err != nil {
		return "", fmt.Errorf("record staged volume: %w", err)
	}
	secrets, err := m.secretData(ctx, s.stageSecret)
	if err != nil {
		return "", err
	}
	_, err = d.node.NodeStageVolume(ctx, &csipb.NodeStageVolumeRequest{
		VolumeId:          s.handle,
		PublishContext:    publishCtx,
		StagingTargetPath: path,
		VolumeCapability:  capability,
		Secrets:           secrets,
		VolumeContext:     s.attributes,
	})
	if err != nil {
		return "", fmt.Errorf("NodeStageVolume: %w", err)
	}
	rec.Published = true // here: staged
	if err := writeRecord(recDir, rec); err != nil {
		return "", fmt.Errorf("record staged volume: %w", err)
	}
	return path, nil
}

// podFSGroup is the pod's fsGroup and fsGroupChangePolicy, nil when unset.
func podFSGroup(pod *v1.Pod) (*int64, *v1.PodFSGroupChangePolicy) {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return nil, nil
	}
	return sc.FSGroup, sc.FSGroupChangePolicy
}
