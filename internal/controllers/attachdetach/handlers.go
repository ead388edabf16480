package attachdetach

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

func (c *Controller) podChanged(o any) {
	if p, ok := informerutil.Unwrap(o).(*corev1.Pod); ok && p.Spec.NodeName != "" {
		c.queue.Add(p.Spec.NodeName)
	}
}

func (c *Controller) nodeChanged(o any) {
	if n, ok := informerutil.Unwrap(o).(*corev1.Node); ok {
		c.queue.Add(n.Name)
	}
}

// nodeUpdated looks at a node again only when what this controller reads
// or writes changed, not on every heartbeat.
func (c *Controller) nodeUpdated(old, cur any) {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := cur.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	if o.Annotations[annControllerManaged] != n.Annotations[annControllerManaged] ||
		!slices.Equal(o.Status.VolumesInUse, n.Status.VolumesInUse) ||
		!equality.Semantic.DeepEqual(o.Status.VolumesAttached, n.Status.VolumesAttached) {
		c.queue.Add(n.Name)
	}
}

// claimChanged looks at the nodes of the claim's pods: its binding decides
// which volume they want.
func (c *Controller) claimChanged(o any) {
	if pvc, ok := informerutil.Unwrap(o).(*corev1.PersistentVolumeClaim); ok {
		c.enqueueNodesOfClaim(pvc.Namespace, pvc.Name)
	}
}

func (c *Controller) volumeChanged(o any) {
	if pv, ok := informerutil.Unwrap(o).(*corev1.PersistentVolume); ok && pv.Spec.ClaimRef != nil {
		c.enqueueNodesOfClaim(pv.Spec.ClaimRef.Namespace, pv.Spec.ClaimRef.Name)
	}
}

func (c *Controller) enqueueNodesOfClaim(namespace, claim string) {
	pods, err := c.pods.ByIndex(podsByClaim, namespace+"/"+claim)
	if err != nil {
		return
	}
	for _, o := range pods {
		c.podChanged(o)
	}
}

// enqueueAllNodes follows a CSIDriver change, which may turn attaching on
// or off for any node's volumes.
func (c *Controller) enqueueAllNodes() {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		c.queue.Add(n.Name)
	}
}

func (c *Controller) attachmentChanged(o any) {
	if va, ok := informerutil.Unwrap(o).(*storagev1.VolumeAttachment); ok {
		c.queue.Add(va.Spec.NodeName)
	}
}

// attachmentUpdated syncs the node and tells the pods waiting for the
// volume how the external attacher fared.
func (c *Controller) attachmentUpdated(old, cur any) {
	c.attachmentChanged(cur)
	o, ok1 := old.(*storagev1.VolumeAttachment)
	n, ok2 := cur.(*storagev1.VolumeAttachment)
	if !ok1 || !ok2 || n.Spec.Source.PersistentVolumeName == nil {
		return
	}
	pv := *n.Spec.Source.PersistentVolumeName
	switch {
	case n.Status.Attached && !o.Status.Attached:
		c.eventOnPods(n.Spec.NodeName, pv, corev1.EventTypeNormal, "SuccessfulAttachVolume",
			fmt.Sprintf("AttachVolume.Attach succeeded for volume %q", pv))
	case n.Status.AttachError != nil && n.Status.AttachError.Message != "" &&
		(o.Status.AttachError == nil || o.Status.AttachError.Message != n.Status.AttachError.Message):
		c.eventOnPods(n.Spec.NodeName, pv, corev1.EventTypeWarning, "FailedAttachVolume",
			fmt.Sprintf("AttachVolume.Attach failed for volume %q : %s", pv, n.Status.AttachError.Message))
	}
}

// attachmentDeleted syncs the node, and the other nodes whose pods want
// the volume: a volume that attaches to one node at a time may go there
// now.
func (c *Controller) attachmentDeleted(o any) {
	va, ok := informerutil.Unwrap(o).(*storagev1.VolumeAttachment)
	if !ok {
		return
	}
	c.forgetDetach(va.Name)
	c.queue.Add(va.Spec.NodeName)
	if va.Spec.Source.PersistentVolumeName == nil {
		return
	}
	pv, err := c.volumes.Get(*va.Spec.Source.PersistentVolumeName)
	if err == nil && pv.Spec.ClaimRef != nil {
		c.enqueueNodesOfClaim(pv.Spec.ClaimRef.Namespace, pv.Spec.ClaimRef.Name)
	}
}

// eventOnPods records an event on each active pod of the node that uses
// the volume.
func (c *Controller) eventOnPods(node, pvName, eventType, reason, message string) {
	for _, p := range c.podsUsingVolume(node, pvName) {
		c.recorder.Event(p, eventType, reason, message)
	}
}

// podsUsingVolume lists the node's active pods whose claims are bound to
// the volume.
func (c *Controller) podsUsingVolume(node, pvName string) []*corev1.Pod {
	objs, err := c.pods.ByIndex(podsByNode, node)
	if err != nil {
		return nil
	}
	var out []*corev1.Pod
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || podTerminated(p) {
			continue
		}
		for i := range p.Spec.Volumes {
			name := claimName(p, &p.Spec.Volumes[i])
			if name == "" {
				continue
			}
			if pvc, err := c.claims.PersistentVolumeClaims(p.Namespace).Get(name); err == nil && pvc.Spec.VolumeName == pvName {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
