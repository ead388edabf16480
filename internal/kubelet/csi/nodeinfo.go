package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// nodeIDAnnotation maps driver names to their node IDs on the Node, as
// upstream's kubelet still writes it.
const nodeIDAnnotation = "csi.volume.kubernetes.io/nodeid"

// installDriver asks the driver for its node info and records it: node ID
// annotation and topology labels on the Node, the driver's entry in CSINode.
func (m *Manager) installDriver(ctx context.Context, d *driver) error {
	callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := d.node.NodeGetInfo(callCtx, &csipb.NodeGetInfoRequest{})
	if err != nil {
		return fmt.Errorf("NodeGetInfo: %w", err)
	}
	if info.GetNodeId() == "" {
		return fmt.Errorf("NodeGetInfo returned an empty node ID")
	}
	topology := info.GetAccessibleTopology().GetSegments()
	if err := m.updateNode(ctx, func(node *v1.Node) error {
		ids := nodeIDs(node)
		ids[d.name] = info.GetNodeId()
		if err := setNodeIDs(node, ids); err != nil {
			return err
		}
		for key, value := range topology {
			if old, ok := node.Labels[key]; ok && old != value {
				return fmt.Errorf("topology label %s=%s collides with the node's %s=%s", key, value, key, old)
			}
			if node.Labels == nil {
				node.Labels = map[string]string{}
			}
			node.Labels[key] = value
		}
		return nil
	}); err != nil {
		return err
	}
	entry := storagev1.CSINodeDriver{
		Name:         d.name,
		NodeID:       info.GetNodeId(),
		TopologyKeys: slices.Sorted(maps.Keys(topology)),
	}
	if n := info.GetMaxVolumesPerNode(); n > 0 {
		count := int32(min(n, int64(1<<31-1)))
		entry.Allocatable = &storagev1.VolumeNodeResources{Count: &count}
	}
	return m.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		drivers = slices.DeleteFunc(drivers, func(e storagev1.CSINodeDriver) bool { return e.Name == d.name })
		return append(drivers, entry)
	})
}

// uninstallDriver drops the driver's CSINode entry and node ID annotation;
// topology labels stay, as upstream leaves them.
func (m *Manager) uninstallDriver(ctx context.Context, name string) error {
	if err := m.updateCSINode(ctx, func(drivers []storagev1.CSINodeDriver) []storagev1.CSINodeDriver {
		return slices.DeleteFunc(drivers, func(e storagev1.CSINodeDriver) bool { return e.Name == name })
	}); err != nil {
		return err
	}
	return m.updateNode(ctx, func(node *v1.Node) error {
		ids := nodeIDs(node)
		delete(ids, name)
		return setNodeIDs(node, ids)
	})
}

func nodeIDs(node *v1.Node) map[string]string {
	ids := map[string]string{}
	if raw := node.Annotations[nodeIDAnnotation]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &ids) // a corrupt value is rewritten
	}
	return ids
}

func setNodeIDs(node *v1.Node, ids map[string]string) error {
	if len(ids) == 0 {
		delete(node.Annotations, nodeIDAnnotation)
		return nil
	}
	raw, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[nodeIDAnnotation] = string(raw)
	return nil
}

// updateNode applies change to the node and writes it if it changed.
func (m *Manager) updateNode(ctx context.Context, change func(*v1.Node) error) error {
	nodes := m.cfg.Client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := nodes.Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		updated := node.DeepCopy()
		if err := change(updated); err != nil {
			return err
		}
		if maps.Equal(updated.Labels, node.Labels) && maps.Equal(updated.Annotations, node.Annotations) {
			return nil
		}
		_, err = nodes.Update(ctx, updated, metav1.UpdateOptions{})
		return err
	})
}

// ensureCSINode creates the node's CSINode, owned by the Node, if missing.
func (m *Manager) ensureCSINode(ctx context.Context) error {
	_, err := m.csiNode(ctx)
	return err
}

func (m *Manager) csiNode(ctx context.Context) (*storagev1.CSINode, error) {
	csiNodes := m.cfg.Client.StorageV1().CSINodes()
	cn, err := csiNodes.Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		return cn, err
	}
	node, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node: %w", err)
	}
	cn = &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{
			Name:            m.cfg.NodeName,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
		},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{}},
	}
	created, err := csiNodes.Create(ctx, cn, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return csiNodes.Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	}
	return created, err
}

// updateCSINode rewrites the CSINode's driver list with change.
func (m *Manager) updateCSINode(ctx context.Context, change func([]storagev1.CSINodeDriver) []storagev1.CSINodeDriver) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cn, err := m.csiNode(ctx)
		if err != nil {
			return fmt.Errorf("CSINode: %w", err)
		}
		updated := cn.DeepCopy()
		updated.Spec.Drivers = change(slices.Clone(cn.Spec.Drivers))
		if updated.Spec.Drivers == nil {
			updated.Spec.Drivers = []storagev1.CSINodeDriver{}
		}
		_, err = m.cfg.Client.StorageV1().CSINodes().Update(ctx, updated, metav1.UpdateOptions{})
		return err
	})
}
