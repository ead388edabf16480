package main

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// conditionReady is the Widget condition the operator maintains.
const conditionReady = "Ready"

// widgetReconciler keeps, for each Widget, a ConfigMap "<name>-widget"
// (controlled by the Widget, so the garbage collector removes it with the
// Widget) whose data.size is the Widget's spec.size, and reports what it
// did in the Widget's status.
type widgetReconciler struct {
	client   client.Client
	scheme   *runtime.Scheme
	recorder events.EventRecorder // nil: no events (unit tests)
}

// configMapName is the name of the ConfigMap a Widget owns.
func configMapName(widget string) string { return widget + "-widget" }

func (r *widgetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var w Widget
	if err := r.client.Get(ctx, req.NamespacedName, &w); err != nil {
		// Deleted: the garbage collector removes the ConfigMap.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !w.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: configMapName(w.Name), Namespace: w.Namespace}}
	size := strconv.FormatInt(w.Spec.Size, 10)
	op, err := controllerutil.CreateOrUpdate(ctx, r.client, cm, func() error {
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data["size"] = size
		return controllerutil.SetControllerReference(&w, cm, r.scheme)
	})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	if op != controllerutil.OperationResultNone {
		logger.Info("configmap written", "configmap", cm.Name, "operation", op, "size", size)
		r.event(&w, cm, corev1.EventTypeNormal, "ConfigMapWritten", "Reconcile", "ConfigMap %s %s with size %s", cm.Name, op, size)
	}

	observed := w.Spec.Size
	changed := w.Status.ObservedSize == nil || *w.Status.ObservedSize != observed || w.Status.ObservedGeneration != w.Generation
	w.Status.ObservedSize = &observed
	w.Status.ObservedGeneration = w.Generation
	if meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{
		Type:               conditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             "ConfigMapInSync",
		Message:            fmt.Sprintf("ConfigMap %s holds size %s", cm.Name, size),
		ObservedGeneration: w.Generation,
	}) {
		changed = true
	}
	if !changed {
		return ctrl.Result{}, nil
	}
	// A conflict means a newer Widget is on its way through the cache:
	// the returned error requeues with backoff.
	if err := r.client.Status().Update(ctx, &w); err != nil {
		return ctrl.Result{}, fmt.Errorf("status of widget %s: %w", req.NamespacedName, err)
	}
	return ctrl.Result{}, nil
}

func (r *widgetReconciler) event(regarding, related runtime.Object, eventType, reason, action, note string, args ...any) {
	if r.recorder != nil {
		r.recorder.Eventf(regarding, related, eventType, reason, action, note, args...)
	}
}

// setupWithManager watches Widgets and the ConfigMaps they own, through
// the manager's shared informers.
func (r *widgetReconciler) setupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&Widget{}).
		Owns(&corev1.ConfigMap{}).
		Named("widget").
		Complete(r)
}
