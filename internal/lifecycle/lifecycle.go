// Package lifecycle runs the named parts of a process (containerd, the
// kubelet, the service proxy, ...) as one unit: they start in order, run
// together, and stop in reverse order, so a part is never stopped while a
// later one, which may depend on it, still runs. A panic in one part is
// recovered into an error naming it and stops the whole group cleanly
// instead of ending the process.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/skiff-dev/skiff/internal/crash"
)

// Component is one named part of a Group. Every func is optional.
type Component struct {
	Name string
	// Start is a synchronous set-up step; the next component starts only
	// once it has returned. Its ctx is the component's own: it ends when
	// the component is stopped (or when the group's ctx ends while Start
	// is still running), so Start may hand it to things that serve until
	// then. An error stops the components already started, in reverse.
	Start func(ctx context.Context) error
	// Run runs from right after Start until ctx ends. A non-nil error
	// (other than ctx's own once it ended) stops the group. Returning nil
	// early does not: the component is simply done, the others run on.
	Run func(ctx context.Context) error
	// Stop releases what Start set up. It is called after Run has
	// returned, and only if Start succeeded.
	Stop func()
}

// Group starts, runs and stops components. The zero value is ready to use
// and logs to slog.Default.
type Group struct {
	Logger     *slog.Logger
	components []Component
}

// Add appends components; they start in the order added.
func (g *Group) Add(cs ...Component) {
	g.components = append(g.components, cs...)
}

// started is a component that has passed Start.
type started struct {
	Component
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned (at once if none)
}

// Run starts the components in order, then waits until ctx ends or a
// component fails (a Start or Run error, or a panic), and then stops the
// started components in reverse order: for each it cancels the component's
// ctx, waits for its Run to return, and calls Stop. Every goroutine the
// Group started has ended when Run returns. The error joins the first Run
// failure with any Start and Stop failures, each prefixed with the
// component's name; it is nil when the group just ran until ctx ended.
func (g *Group) Run(ctx context.Context) error {
	log := g.Logger
	if log == nil {
		log = slog.Default()
	}
	// eg's ctx ends with the parent or at the first Run error: the signal
	// to stop. The components' own contexts do not derive their
	// cancellation from it, so they can be stopped one by one.
	eg, egCtx := errgroup.WithContext(ctx)
	base := context.WithoutCancel(ctx)
	var up []*started
	var errs []error

	for _, c := range g.components {
		if egCtx.Err() != nil {
			break // ended or failed during start-up: start nothing more
		}
		cctx, cancel := context.WithCancel(base)
		begin := time.Now()
		err := g.start(egCtx, cctx, cancel, log, c)
		if err != nil {
			cancel()
			errs = append(errs, err)
			break
		}
		log.Debug("component started", "component", c.Name, "duration", time.Since(begin))
		s := &started{Component: c, cancel: cancel, done: make(chan struct{})}
		up = append(up, s)
		if c.Run == nil {
			close(s.done)
			continue
		}
		eg.Go(func() error {
			defer close(s.done)
			err := runSafely(log, c.Name, func() error { return c.Run(cctx) })
			if err != nil && cctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil // stopped as asked
			}
			if err != nil {
				log.Debug("component failed", "component", c.Name, "err", err)
			}
			return err
		})
	}

	if len(errs) == 0 {
		<-egCtx.Done()
	}
	for i := len(up) - 1; i >= 0; i-- {
		s := up[i]
		begin := time.Now()
		s.cancel()
		<-s.done
		if s.Stop != nil {
			if err := runSafely(log, s.Name, func() error { s.Stop(); return nil }); err != nil {
				errs = append(errs, err)
			}
		}
		log.Debug("component stopped", "component", s.Name, "duration", time.Since(begin))
	}
	// Every Run has returned: Wait only collects the first Run error.
	if err := eg.Wait(); err != nil {
		errs = append([]error{err}, errs...)
	}
	return errors.Join(errs...)
}

// start calls c.Start with the component's ctx, which also ends if the
// group's ctx ends or a Run fails meanwhile, so a slow set-up step can be
// interrupted.
func (g *Group) start(ctx, cctx context.Context, cancel context.CancelFunc, log *slog.Logger, c Component) error {
	if c.Start == nil {
		return nil
	}
	unwatch := context.AfterFunc(ctx, cancel)
	defer unwatch()
	return runSafely(log, c.Name, func() error { return c.Start(cctx) })
}

// runSafely calls f, naming the component in its error and turning a panic
// into an error (logged with its stack and counted by crash).
func runSafely(log *slog.Logger, name string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			crash.Recovered(log, name, r)
			err = fmt.Errorf("%s: panic: %v", name, r)
		}
	}()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
