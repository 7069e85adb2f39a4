package system

import (
	"context"
	"slices"

	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/trigger"
)

// Triggers returns the schedules, queue consumers and change
// subscriptions.
func (s *System) Triggers() *trigger.Manager { return s.triggers }

// ObserveTriggered adds fn to those told of every invocation a trigger
// made, as the gateway is of the ones it makes (its metrics count both).
func (s *System) ObserveTriggered(fn func(*Outcome)) {
	s.observeMu.Lock()
	defer s.observeMu.Unlock()
	var fns []func(*Outcome)
	if old := s.triggered.Load(); old != nil {
		fns = slices.Clone(*old)
	}
	fns = append(fns, fn)
	s.triggered.Store(&fns)
}

// openTriggers starts the triggers once functions are loaded; their
// invocations go through Invoke, as the gateway's do.
func (s *System) openTriggers() error {
	var err error
	s.triggers, err = trigger.Open(trigger.Config{
		DB:      s.db,
		Coord:   s.baas.Coord(),
		Changes: s.baas.Changes(),
		Invoke:  s.invokeTriggered,
		Exists:  func(fn string) bool { return s.lookup(fn) != nil },
		Allowed: s.bucketGranted,
		Clock:   s.cfg.TriggerClock,
		OnFire:  s.cfg.OnTriggerFire,
		Logger:  s.log.With("part", "triggers"),
	})
	return err
}

func (s *System) invokeTriggered(ctx context.Context, fn string, payload []byte) trigger.Result {
	out, err := s.Invoke(ctx, Invocation{Function: fn, Payload: payload})
	if err != nil {
		return trigger.Result{Err: err}
	}
	if obs := s.triggered.Load(); obs != nil {
		for _, fn := range *obs {
			fn(out)
		}
	}
	return trigger.Result{ID: out.ID, Output: out.Output, Err: out.Err}
}

// bucketGranted reports whether fn's current config grants it bucket
// (trigger.Config.Allowed).
func (s *System) bucketGranted(fn, bucket string, write bool) error {
	a := s.lookup(fn)
	if a == nil {
		return errs.E(errs.NotFound, "function %q not found", fn)
	}
	p := a.caller.Perms
	if !p.CanRead(bucket) || (write && !p.CanWrite(bucket)) {
		need := "permissions.read"
		if write {
			need = "permissions.read and permissions.write"
		}
		return errs.E(errs.Forbidden, "function %q may not use bucket %q: add it to %s in its config", fn, bucket, need)
	}
	return nil
}
