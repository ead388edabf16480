package apiserver

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apis/crdschema"
)

// serve starts, restarts or stops serving crd as its state requires.
func (c *crdController) serve(crd *apiextensionsv1.CustomResourceDefinition) error {
	cur := c.served[crd.Name]
	if !crdConditionTrue(crd, apiextensionsv1.Established) || crd.Status.AcceptedNames.Plural == "" {
		c.unserve(crd.Name)
		return nil
	}
	terminating := crd.DeletionTimestamp != nil
	if cur != nil && cur.uid == crd.UID && cur.generation == crd.Generation && equality.Semantic.DeepEqual(cur.names, crd.Status.AcceptedNames) {
		cur.terminating.Store(terminating)
		return nil
	}
	flag := &atomic.Bool{}
	if cur != nil {
		flag = cur.terminating
	}
	flag.Store(terminating)
	next, err := c.start(crd, flag)
	if err != nil {
		return err
	}
	c.served[crd.Name] = next
	c.publish()
	if cur != nil {
		cur.stop()
	}
	c.s.log.Info("serving custom resource", "name", crd.Name, "versions", len(next.resources))
	return nil
}

// start builds the resources of crd's served versions and runs their caches.
func (c *crdController) start(crd *apiextensionsv1.CustomResourceDefinition, terminating *atomic.Bool) (*servedCRD, error) {
	ctx, cancel := context.WithCancel(c.s.runCtx)
	sc := &servedCRD{
		uid: crd.UID, generation: crd.Generation, names: crd.Status.AcceptedNames, terminating: terminating, cancel: cancel,
	}
	frozen := crd.DeepCopy()
	for i := range frozen.Spec.Versions {
		v := &frozen.Spec.Versions[i]
		if !v.Served {
			continue
		}
		compiled, err := crdschema.Compile(frozen, v.Name)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("compile %s version %s: %w", crd.Name, v.Name, err)
		}
		sc.resources = append(sc.resources, newCustomResource(frozen, v, compiled, c.s.cfg.Store, c.s.codecs,
			c.s.cfg.WatchCacheHistory, terminating, c.converter))
	}
	for _, r := range sc.resources {
		sc.wg.Add(1)
		go func() {
			defer sc.wg.Done()
			r.cache.Run(ctx)
		}()
	}
	return sc, nil
}

// unserve stops serving the named CRD.
func (c *crdController) unserve(name string) {
	cur := c.served[name]
	if cur == nil {
		return
	}
	delete(c.served, name)
	c.publish()
	cur.stop()
	c.s.log.Info("stopped serving custom resource", "name", name)
}

// publish swaps in a new snapshot of the served custom resources, with
// discovery (and OpenAPI) rebuilt from it.
func (c *crdController) publish() {
	set := &customSet{byGVR: map[schema.GroupVersionResource]*resource{}, byKind: map[schema.GroupVersionKind]*resource{}}
	names := make([]string, 0, len(c.served))
	for n := range c.served {
		names = append(names, n)
	}
	sort.Strings(names)
	var all []*resource
	for _, n := range names {
		for _, r := range c.served[n].resources {
			if c.s.resources[r.GVR] != nil {
				continue // built-ins win
			}
			set.byGVR[r.GVR] = r
			set.byKind[r.gvk] = r
			all = append(all, r)
		}
	}
	disc, err := c.s.discovery.buildCustomDiscovery(all)
	if err != nil {
		c.s.log.Error("build custom resource discovery", "err", err)
	}
	set.disc = disc
	c.s.custom.Store(set)
	c.s.publishOpenAPI(all)
}
