package csicapacity

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/status"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/controllers/csiprovisioner"
)

// reservedPrefix marks class parameters that are the provisioner's,
// never the driver's (as in csiprovisioner).
const reservedPrefix = "csi.storage.k8s.io/"

// segment is one topology segment of a driver and the nodes in it.
type segment struct {
	labels map[string]string
	nodes  []string // sorted
}

// item is one object to publish: a class in a segment.
type item struct {
	class *storagev1.StorageClass
	seg   *segment
}

// key identifies an object by class and segment.
func key(class string, seg map[string]string) string {
	return class + "/" + labels.Set(seg).String()
}

// sync makes the driver's published objects one per (class, segment)
// with the capacity the driver reports. A segment whose GetCapacity fails
// keeps its object as it was; the error retries the driver.
func (c *Controller) sync(ctx context.Context, driver string) error {
	want, err := c.desired(driver)
	if err != nil {
		return err
	}
	list, err := c.client.StorageV1().CSIStorageCapacities(Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{DriverLabel: driver, ManagedByLabel: ManagedBy}.String(),
	})
	if err != nil {
		return fmt.Errorf("listing CSIStorageCapacities of %s: %w", driver, err)
	}
	// Listed from the API server, not the cache: an object created by the
	// last sync is seen, so none is created twice.
	have := map[string]*storagev1.CSIStorageCapacity{}
	var stale []*storagev1.CSIStorageCapacity
	for i := range list.Items {
		csc := &list.Items[i]
		k, ok := objectKey(csc)
		if _, dup := have[k]; !ok || dup || want[k] == nil {
			stale = append(stale, csc)
			continue
		}
		have[k] = csc
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if err := c.publish(ctx, driver, want[k], have[k]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, csc := range stale {
		err := c.client.StorageV1().CSIStorageCapacities(Namespace).Delete(ctx, csc.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &csc.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting CSIStorageCapacity %s: %w", csc.Name, err))
			continue
		}
		c.log.Info("deleted CSIStorageCapacity", "name", csc.Name, "driver", driver, "class", csc.StorageClassName)
	}
	return errors.Join(errs...)
}

// objectKey is the key of a published object; false for one not of the
// shape this controller makes.
func objectKey(csc *storagev1.CSIStorageCapacity) (string, bool) {
	t := csc.NodeTopology
	if t == nil || len(t.MatchExpressions) > 0 || len(t.MatchLabels) == 0 {
		return "", false
	}
	return key(csc.StorageClassName, t.MatchLabels), true
}

// publish asks the driver for the item's capacity and creates or updates
// its object (have, nil when there is none).
func (c *Controller) publish(ctx context.Context, driver string, it *item, have *storagev1.CSIStorageCapacity) error {
	resp, err := c.getCapacity(ctx, driver, it)
	if err != nil {
		return fmt.Errorf("GetCapacity of CSI driver %s for class %s in %s: %w", driver, it.class.Name, labels.Set(it.seg.labels), err)
	}
	capacity := resource.NewQuantity(resp.GetAvailableCapacity(), resource.BinarySI)
	var maxSize *resource.Quantity
	if m := resp.GetMaximumVolumeSize(); m != nil {
		maxSize = resource.NewQuantity(m.GetValue(), resource.BinarySI)
	}
	api := c.client.StorageV1().CSIStorageCapacities(Namespace)
	if have == nil {
		csc := &storagev1.CSIStorageCapacity{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: generateName, Namespace: Namespace,
				Labels: map[string]string{DriverLabel: driver, ManagedByLabel: ManagedBy},
			},
			NodeTopology:      &metav1.LabelSelector{MatchLabels: maps.Clone(it.seg.labels)},
			StorageClassName:  it.class.Name,
			Capacity:          capacity,
			MaximumVolumeSize: maxSize,
		}
		created, err := api.Create(ctx, csc, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating CSIStorageCapacity for class %s in %s: %w", it.class.Name, labels.Set(it.seg.labels), err)
		}
		c.log.Info("created CSIStorageCapacity", "name", created.Name, "driver", driver, "class", it.class.Name,
			"segment", labels.Set(it.seg.labels).String(), "capacity", capacity.String())
		return nil
	}
	if sameQuantity(have.Capacity, capacity) && sameQuantity(have.MaximumVolumeSize, maxSize) {
		return nil
	}
	csc := have.DeepCopy()
	csc.Capacity, csc.MaximumVolumeSize = capacity, maxSize
	if _, err := api.Update(ctx, csc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating CSIStorageCapacity %s: %w", have.Name, err)
	}
	c.log.Debug("updated CSIStorageCapacity", "name", have.Name, "capacity", capacity.String())
	return nil
}

func sameQuantity(a, b *resource.Quantity) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Cmp(*b) == 0
}

// getCapacity asks the segment's nodes in turn until one's driver
// answers; the driver's own error ends the round.
func (c *Controller) getCapacity(ctx context.Context, driver string, it *item) (*csipb.GetCapacityResponse, error) {
	params := map[string]string{}
	for k, v := range it.class.Parameters {
		if !strings.HasPrefix(k, reservedPrefix) {
			params[k] = v
		}
	}
	req := &csipb.GetCapacityRequest{
		// As upstream: capacity is assumed not to depend on the
		// capabilities, but the spec wants some.
		VolumeCapabilities: []*csipb.VolumeCapability{{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_UNKNOWN},
		}},
		Parameters:         params,
		AccessibleTopology: &csipb.Topology{Segments: maps.Clone(it.seg.labels)},
	}
	var lastErr error
	for _, node := range it.seg.nodes {
		resp, err := c.csi.GetCapacity(ctx, node, driver, req)
		if err == nil {
			return resp, nil
		}
		if _, fromDriver := status.FromError(err); fromDriver {
			return nil, fmt.Errorf("node %s: %w", node, err)
		}
		lastErr = err
	}
	return nil, lastErr
}

// desired returns the items the driver should have, by key: none for a
// driver that is gone, does not track capacity or is left to an external
// provisioner.
func (c *Controller) desired(driver string) (map[string]*item, error) {
	d, err := c.drivers.Get(driver)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Spec.StorageCapacity == nil || !*d.Spec.StorageCapacity || d.Annotations[csiprovisioner.ModeAnnotation] == csiprovisioner.ModeExternal {
		return nil, nil
	}
	classes, err := c.classes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	segs, err := c.segments(driver)
	if err != nil {
		return nil, err
	}
	out := map[string]*item{}
	for _, sc := range classes {
		// As external-provisioner without --capacity-for-immediate-binding:
		// the scheduler reads capacity only for claims it places itself.
		if sc.Provisioner != driver || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			continue
		}
		for _, s := range segs {
			out[key(sc.Name, s.labels)] = &item{class: sc, seg: s}
		}
	}
	return out, nil
}

// segments returns the distinct topology segments of the nodes the
// driver is registered on: its topology keys with each node's values.
// Nodes where it has no topology keys, or that lack a key's label, are
// in none.
func (c *Controller) segments(driver string) ([]*segment, error) {
	csiNodes, err := c.csiNodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	byKey := map[string]*segment{}
	for _, cn := range csiNodes {
		i := slices.IndexFunc(cn.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == driver })
		if i < 0 || len(cn.Spec.Drivers[i].TopologyKeys) == 0 {
			continue
		}
		node, err := c.nodes.Get(cn.Name)
		if err != nil {
			continue // not there yet, or gone
		}
		seg := map[string]string{}
		for _, k := range cn.Spec.Drivers[i].TopologyKeys {
			v, ok := node.Labels[k]
			if !ok {
				seg = nil
				break
			}
			seg[k] = v
		}
		if seg == nil {
			continue
		}
		k := labels.Set(seg).String()
		if byKey[k] == nil {
			byKey[k] = &segment{labels: seg}
		}
		byKey[k].nodes = append(byKey[k].nodes, cn.Name)
	}
	out := make([]*segment, 0, len(byKey))
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		slices.Sort(byKey[k].nodes)
		out = append(out, byKey[k])
	}
	return out, nil
}
