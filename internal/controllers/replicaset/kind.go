package replicaset

import (
	"context"
	"log/slog"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// kind adapts the controller to a replicated kind: ReplicaSets directly,
// ReplicationControllers through a conversion to the ReplicaSet shape.
type kind struct {
	gvk       schema.GroupVersionKind
	component string
	get       func(ns, name string) (*appsv1.ReplicaSet, error)
	list      func(ns string) ([]*appsv1.ReplicaSet, error)
	// live reads one from the API server, past the informer.
	live        func(ctx context.Context, ns, name string) (metav1.Object, error)
	writeStatus func(ctx context.Context, rs *appsv1.ReplicaSet) error
	// eventObject is what events are recorded against.
	eventObject func(rs *appsv1.ReplicaSet) runtime.Object
}

var rcGVK = corev1.SchemeGroupVersion.WithKind("ReplicationController")

// NewForReplicationControllers builds the ReplicationController controller:
// the same reconcile loop over core/v1 ReplicationControllers.
func NewForReplicationControllers(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	rcs := factory.Core().V1().ReplicationControllers()
	lister := rcs.Lister()
	return newController(client, factory, log, rcs.Informer(), kind{
		gvk:       rcGVK,
		component: "replication-controller",
		get: func(ns, name string) (*appsv1.ReplicaSet, error) {
			rc, err := lister.ReplicationControllers(ns).Get(name)
			if err != nil {
				return nil, err
			}
			return fromRC(rc), nil
		},
		list: func(ns string) ([]*appsv1.ReplicaSet, error) {
			rcList, err := lister.ReplicationControllers(ns).List(labels.Everything())
			out := make([]*appsv1.ReplicaSet, len(rcList))
			for i, rc := range rcList {
				out[i] = fromRC(rc)
			}
			return out, err
		},
		live: func(ctx context.Context, ns, name string) (metav1.Object, error) {
			return client.CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
		},
		writeStatus: func(ctx context.Context, rs *appsv1.ReplicaSet) error {
			rc, err := lister.ReplicationControllers(rs.Namespace).Get(rs.Name)
			if err != nil {
				return err
			}
			next := rc.DeepCopy()
			next.Status = rcStatus(rs.Status)
			_, err = client.CoreV1().ReplicationControllers(rs.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
			return err
		},
		eventObject: func(rs *appsv1.ReplicaSet) runtime.Object {
			return &corev1.ReplicationController{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ReplicationController"}, ObjectMeta: rs.ObjectMeta}
		},
	})
}

// fromRC views a ReplicationController as a ReplicaSet.
func fromRC(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: *rc.ObjectMeta.DeepCopy(),
		Spec: appsv1.ReplicaSetSpec{
			Replicas: rc.Spec.Replicas, MinReadySeconds: rc.Spec.MinReadySeconds,
			Selector: &metav1.LabelSelector{MatchLabels: rc.Spec.Selector},
		},
		Status: appsv1.ReplicaSetStatus{
			Replicas: rc.Status.Replicas, FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
			ReadyReplicas: rc.Status.ReadyReplicas, AvailableReplicas: rc.Status.AvailableReplicas,
			ObservedGeneration: rc.Status.ObservedGeneration,
		},
	}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template.DeepCopy()
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetConditionType(c.Type), Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime,
		})
	}
	return rs
}

func rcStatus(s appsv1.ReplicaSetStatus) corev1.ReplicationControllerStatus {
	out := corev1.ReplicationControllerStatus{
		Replicas: s.Replicas, FullyLabeledReplicas: s.FullyLabeledReplicas, ReadyReplicas: s.ReadyReplicas,
		AvailableReplicas: s.AvailableReplicas, ObservedGeneration: s.ObservedGeneration,
	}
	for _, c := range s.Conditions {
		out.Conditions = append(out.Conditions, corev1.ReplicationControllerCondition{
			Type: corev1.ReplicationControllerConditionType(c.Type), Status: c.Status, Reason: c.Reason, Message: c.Message, LastTransitionTime: c.LastTransitionTime,
		})
	}
	return out
}
