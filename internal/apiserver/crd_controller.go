package apiserver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/storage"
)

var crdGVR = apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions")

// crdController does inside the API server what upstream's apiextensions
// controllers do: it accepts a CRD's names (or reports a conflict),
// establishes it, serves its versions (one resource and watch cache per
// served version), removes its objects when it is deleted, and keeps
// discovery and OpenAPI in step.
type crdController struct {
	s     *Server
	crds  *resource
	queue workqueue.TypedRateLimitingInterface[string]
	// served and accepted are touched by the controller's goroutine only.
	served map[string]*servedCRD
	// accepted are the names each CRD holds, as last written: fresher
	// than the watch cache right after a write.
	accepted map[string]apiextensionsv1.CustomResourceDefinition
	synced   chan struct{}
	// converter converts objects of CRDs with Webhook conversion.
	converter CustomResourceConverter
}

// servedCRD is a CRD being served: its resources and their caches.
type servedCRD struct {
	uid         types.UID
	generation  int64
	names       apiextensionsv1.CustomResourceDefinitionNames
	resources   []*resource
	terminating *atomic.Bool
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

func (sc *servedCRD) stop() {
	sc.cancel()
	sc.wg.Wait()
}

func newCRDController(s *Server) *crdController {
	crds := s.resources[crdGVR]
	if crds == nil {
		return nil
	}
	var conv CustomResourceConverter = conversionReviewer{caller: s.webhooks}
	if s.cfg.CustomResourceConverter != nil {
		conv = s.cfg.CustomResourceConverter
	}
	return &crdController{
		s: s, crds: crds, converter: conv,
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		served:   map[string]*servedCRD{},
		accepted: map[string]apiextensionsv1.CustomResourceDefinition{},
		synced:   make(chan struct{}),
	}
}

// run serves the CRDs present at start (then closes synced), and follows
// changes until ctx ends; it stops every custom resource cache on return.
func (c *crdController) run(ctx context.Context) {
	defer func() {
		for _, sc := range c.served {
			sc.stop()
		}
	}()
	select {
	case <-c.crds.cache.Ready():
	case <-ctx.Done():
		return
	}
	entries, rev := c.crds.cache.List(c.crds.prefix, nil)
	for _, e := range entries {
		name := e.Obj.(*apiextensionsv1.CustomResourceDefinition).Name
		switch err := c.reconcile(ctx, name); {
		case errors.Is(err, errRequeue):
			c.queue.AddAfter(name, time.Second)
		case err != nil:
			c.s.log.Error("serve custom resource definition", "name", name, "err", err)
			c.queue.AddRateLimited(name)
		}
	}
	for _, sc := range c.served {
		for _, r := range sc.resources {
			select {
			case <-r.cache.Ready():
			case <-ctx.Done():
				return
			}
		}
	}
	close(c.synced)

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		c.queue.ShutDown()
	})
	wg.Go(func() { c.watch(ctx, rev) })
	for c.processNext(ctx) {
	}
}

// watch enqueues every CRD that changes after rev; after a broken watch it
// starts over from the current state.
func (c *crdController) watch(ctx context.Context, rev int64) {
	defer crash.Recover(c.s.log, "crd-controller")
	for ctx.Err() == nil {
		opts := storage.WatchOptions{Prefix: c.crds.prefix, FromRev: rev}
		if rev == 0 {
			opts.Initial = true
			for name := range c.servedNames() {
				c.queue.Add(name) // may have gone while the watch was down
			}
		}
		w, err := c.crds.cache.Watch(ctx, opts)
		if err != nil {
			rev = 0
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for _, ev := range w.Initial() {
			c.enqueue(ev)
		}
		for ev := range w.Events() {
			c.enqueue(ev)
		}
		w.Stop()
		rev = 0
	}
}

// servedNames snapshots the names of the CRDs being served (read from the
// custom set, which other goroutines may read).
func (c *crdController) servedNames() map[string]bool {
	names := map[string]bool{}
	for _, r := range c.s.customResources().byGVR {
		names[r.custom.crd.Name] = true
	}
	return names
}

func (c *crdController) enqueue(ev storage.Event) {
	if ev.Obj == nil || ev.Obj.Obj == nil {
		return
	}
	if crd, ok := ev.Obj.Obj.(*apiextensionsv1.CustomResourceDefinition); ok {
		c.queue.Add(crd.Name)
	}
}

func (c *crdController) processNext(ctx context.Context) bool {
	name, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(name)
	var err error
	func() {
		defer crash.Recover(c.s.log, "crd-controller")
		err = c.reconcile(ctx, name)
	}()
	switch {
	case errors.Is(err, errRequeue):
		c.queue.AddAfter(name, time.Second)
	case err != nil && ctx.Err() == nil:
		c.s.log.Error("reconcile custom resource definition", "name", name, "err", err)
		c.queue.AddRateLimited(name)
	default:
		c.queue.Forget(name)
	}
	return true
}

// errRequeue asks for another look soon (objects still being deleted).
var errRequeue = errors.New("requeue")

// reconcile brings one CRD's status and serving up to date.
func (c *crdController) reconcile(ctx context.Context, name string) error {
	obj, _, err := c.crds.get(ctx, "", name)
	if apierrors.IsNotFound(err) {
		delete(c.accepted, name)
		c.unserve(name)
		return nil
	}
	if err != nil {
		return err
	}
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	if crd.DeletionTimestamp == nil {
		if crd, err = c.updateNames(ctx, crd); err != nil {
			return err
		}
	}
	c.accepted[name] = *crd
	if err := c.serve(crd); err != nil {
		return err
	}
	if crd.DeletionTimestamp != nil {
		return c.finalize(ctx, crd)
	}
	return nil
}
