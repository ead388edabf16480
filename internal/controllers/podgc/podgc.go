// Package podgc deletes pods that can never finish on their own: pods
// bound to nodes that no longer exist, and terminated pods beyond a
// threshold (oldest first).
package podgc

import (
	"context"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// TerminatedThreshold is upstream's default: terminated pods beyond it are
// deleted.
const TerminatedThreshold = 12500

// Controller collects orphaned and surplus terminated pods.
type Controller struct {
	client    kubernetes.Interface
	pods      listerscorev1.PodLister
	nodes     listerscorev1.NodeLister
	synced    []cache.InformerSynced
	threshold int
	period    time.Duration
	log       *slog.Logger
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	pods := factory.Core().V1().Pods()
	nodes := factory.Core().V1().Nodes()
	return &Controller{
		client: client, pods: pods.Lister(), nodes: nodes.Lister(), log: log,
		synced:    []cache.InformerSynced{pods.Informer().HasSynced, nodes.Informer().HasSynced},
		threshold: TerminatedThreshold, period: 20 * time.Second,
	}
}

// Run collects every period until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	wait.UntilWithContext(ctx, c.collect, c.period)
}

func (c *Controller) collect(ctx context.Context) {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return
	}
	var terminated []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			terminated = append(terminated, p)
		}
		if p.Spec.NodeName == "" {
			continue
		}
		if _, err := c.nodes.Get(p.Spec.NodeName); !apierrors.IsNotFound(err) {
			continue
		}
		// Confirm with the API server: the informer may lag a new node.
		if _, err := c.client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			continue
		}
		c.delete(ctx, p, "node no longer exists")
	}
	if extra := len(terminated) - c.threshold; extra > 0 {
		// Oldest first; timestamps have second precision, names break ties.
		sort.Slice(terminated, func(i, j int) bool {
			a, b := terminated[i], terminated[j]
			if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
				return a.CreationTimestamp.Before(&b.CreationTimestamp)
			}
			return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
		})
		for _, p := range terminated[:extra] {
			c.delete(ctx, p, "terminated pods beyond the threshold")
		}
	}
}

func (c *Controller) delete(ctx context.Context, p *corev1.Pod, why string) {
	zero := int64(0)
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		c.log.Warn("pod gc", "pod", p.Namespace+"/"+p.Name, "err", err)
		return
	}
	c.log.Info("garbage-collected pod", "pod", p.Namespace+"/"+p.Name, "reason", why)
}
