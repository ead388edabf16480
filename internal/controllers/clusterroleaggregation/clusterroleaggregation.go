// Package clusterroleaggregation fills the rules of aggregated
// ClusterRoles (admin, edit, view and any with an aggregationRule) from
// the ClusterRoles their selectors match, as upstream's controller does.
package clusterroleaggregation

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersrbacv1 "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// Controller keeps aggregated ClusterRoles' rules up to date.
type Controller struct {
	client kubernetes.Interface
	lister listersrbacv1.ClusterRoleLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// New builds the controller on factory's ClusterRole informer.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	inf := factory.Rbac().V1().ClusterRoles()
	c := &Controller{
		client: client, lister: inf.Lister(), synced: inf.Informer().HasSynced, log: log,
		queue: controllerutil.NewQueue("clusterrole-aggregation"),
	}
	// Any change may affect any aggregated role: a role's labels decide
	// which aggregations include it.
	_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAggregated() },
		UpdateFunc: func(_, _ any) { c.enqueueAggregated() },
		DeleteFunc: func(any) { c.enqueueAggregated() },
	})
	return c
}

func (c *Controller) enqueueAggregated() {
	roles, err := c.lister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, r := range roles {
		if r.AggregationRule != nil {
			c.queue.Add(r.Name)
		}
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		c.queue.ShutDown()
		return
	}
	controllerutil.RunWorkers(ctx, c.queue, 1, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	role, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if role.AggregationRule == nil {
		return nil
	}
	rules, err := aggregate(c.lister, role)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(rules, role.Rules) {
		return nil
	}
	next := role.DeepCopy()
	next.Rules = rules
	if _, err := c.client.RbacV1().ClusterRoles().Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update aggregated clusterrole %s: %w", name, err)
	}
	c.log.Debug("aggregated clusterrole updated", "clusterrole", name, "rules", len(rules))
	return nil
}

// aggregate is the union of the rules of the roles role's selectors match
// (role itself excluded), in selector order, then role name order, each
// rule once.
func aggregate(lister listersrbacv1.ClusterRoleLister, role *rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	for i := range role.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&role.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			// An invalid selector matches nothing; validation should
			// have refused it.
			continue
		}
		matches, err := lister.List(sel)
		if err != nil {
			return nil, err
		}
		sort.Slice(matches, func(a, b int) bool { return matches[a].Name < matches[b].Name })
		for _, m := range matches {
			if m.Name == role.Name {
				continue
			}
			for _, r := range m.Rules {
				if !containsRule(rules, r) {
					rules = append(rules, r)
				}
			}
		}
	}
	return rules, nil
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for i := range rules {
		if equality.Semantic.DeepEqual(rules[i], r) {
			return true
		}
	}
	return false
}
