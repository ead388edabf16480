// Package admissionpolicystatus writes the status of ValidatingAdmissionPolicies:
// the type checking warnings of their expressions and the generation
// checked, as upstream's validatingadmissionpolicy-status controller does.
package admissionpolicystatus

import (
	"context"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	applyv1 "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/admissionregistration/v1"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/policy"
	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// FieldManager owns the status fields written, upstream's controller name.
const FieldManager = "validatingadmissionpolicy-status"

// Controller type-checks each policy whose generation it has not checked.
type Controller struct {
	client kubernetes.Interface
	lister listersv1.ValidatingAdmissionPolicyLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	types  policy.TypeSource
	log    *slog.Logger
}

// New builds the controller on factory's informers. Resources map to kinds
// through discovery; built-in kinds' schemas come from Skiff's own OpenAPI
// definitions, custom resources' from /openapi/v3, as upstream resolves them.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	disc := client.Discovery()
	return NewWithTypes(client, factory, policy.TypeSource{
		Mapper:  restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
		Schemas: policy.BuiltinSchemasAnd(&resolver.ClientDiscoveryResolver{Discovery: disc}),
	}, log)
}

// NewWithTypes is New with the given source of kinds and schemas.
func NewWithTypes(client kubernetes.Interface, factory informers.SharedInformerFactory, types policy.TypeSource, log *slog.Logger) *Controller {
	inf := factory.Admissionregistration().V1().ValidatingAdmissionPolicies()
	c := &Controller{
		client: client, lister: inf.Lister(), synced: inf.Informer().HasSynced,
		queue: controllerutil.NewQueue(FieldManager), types: types, log: log,
	}
	_, _ = inf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(controllerutil.EnqueueKey(c.queue)))
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, []cache.InformerSynced{c.synced}, c.queue, 1, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	p, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// Upstream checks each generation once; a schema that changes later
	// (a CRD's new version) is not re-checked until the policy changes.
	if p.Generation <= p.Status.ObservedGeneration {
		return nil
	}
	warnings := policy.TypeCheck(p, c.types)
	configs := make([]*applyv1.ExpressionWarningApplyConfiguration, 0, len(warnings))
	for _, w := range warnings {
		configs = append(configs, applyv1.ExpressionWarning().WithFieldRef(w.FieldRef).WithWarning(w.Warning))
	}
	// typeChecking is present even without warnings: it says the check
	// is done.
	apply := applyv1.ValidatingAdmissionPolicy(p.Name).WithStatus(applyv1.ValidatingAdmissionPolicyStatus().
		WithObservedGeneration(p.Generation).
		WithTypeChecking(applyv1.TypeChecking().WithExpressionWarnings(configs...)))
	_, err = c.client.AdmissionregistrationV1().ValidatingAdmissionPolicies().ApplyStatus(ctx, apply,
		metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile
	}
	return err
}
