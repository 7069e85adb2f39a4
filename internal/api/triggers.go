package api

import (
	"encoding/json"
	"net/http"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/trigger"
)

// The trigger routes: schedules, queue consumers and change subscriptions.
// Each is created with PUT at its name, so the audit log names it; a
// deploy key manages them, as it manages functions.
func (s *Server) triggerRoutes(h func(handler.Func) http.Handler) {
	deploy, none := fixed(auth.Deploy), audited{}
	tr := s.sys.Triggers()
	s.handle("GET /v1/schedules", deploy, none, h(func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]any{"schedules": tr.Schedules()})
	}))
	s.handle("GET /v1/schedules/{name}", deploy, none, h(func(w http.ResponseWriter, r *http.Request) error {
		st, err := tr.GetSchedule(r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, st)
	}))
	s.handle("PUT /v1/schedules/{name}", deploy, audited{"schedule.create", "name"}, h(func(w http.ResponseWriter, r *http.Request) error {
		var sc trigger.Schedule
		if err := decodeTrigger(w, r, &sc, &sc.Name); err != nil {
			return err
		}
		st, err := tr.AddSchedule(sc)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, st)
	}))
	s.handle("DELETE /v1/schedules/{name}", deploy, audited{"schedule.remove", "name"}, h(func(w http.ResponseWriter, r *http.Request) error {
		if err := tr.RemoveSchedule(r.PathValue("name")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))

	s.handle("GET /v1/consumers", deploy, none, h(func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]any{"consumers": tr.Consumers()})
	}))
	s.handle("GET /v1/consumers/{name}", deploy, none, h(func(w http.ResponseWriter, r *http.Request) error {
		st, err := tr.GetConsumer(r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, st)
	}))
	s.handle("PUT /v1/consumers/{name}", deploy, audited{"consumer.create", "name"}, h(func(w http.ResponseWriter, r *http.Request) error {
		var c trigger.Consumer
		if err := decodeTrigger(w, r, &c, &c.Name); err != nil {
			return err
		}
		st, err := tr.AddConsumer(c)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, st)
	}))
	s.handle("DELETE /v1/consumers/{name}", deploy, audited{"consumer.remove", "name"}, h(func(w http.ResponseWriter, r *http.Request) error {
		if err := tr.RemoveConsumer(r.PathValue("name")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	s.watchRoutes(h)
}

// watchRoutes are the change subscriptions' routes.
func (s *Server) watchRoutes(h func(handler.Func) http.Handler) {
	deploy, none := fixed(auth.Deploy), audited{}
	tr := s.sys.Triggers()
	s.handle("GET /v1/watches", deploy, none, h(func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]any{"watches": tr.Watches()})
	}))
	s.handle("GET /v1/watches/{name}", deploy, none, h(func(w http.ResponseWriter, r *http.Request) error {
		st, err := tr.GetWatch(r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, st)
	}))
	s.handle("PUT /v1/watches/{name}", deploy, audited{"watch.create", "name"}, h(func(w http.ResponseWriter, r *http.Request) error {
		var wt trigger.Watch
		if err := decodeTrigger(w, r, &wt, &wt.Name); err != nil {
			return err
		}
		st, err := tr.AddWatch(wt)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, st)
	}))
	s.handle("DELETE /v1/watches/{name}", deploy, audited{"watch.remove", "name"}, h(func(w http.ResponseWriter, r *http.Request) error {
		if err := tr.RemoveWatch(r.PathValue("name")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}

// decodeTrigger reads a trigger definition (JSON, at most 1 MiB) into v
// and sets its name from the path; a name in the body must agree.
func decodeTrigger(w http.ResponseWriter, r *http.Request, v any, name *string) error {
	body, err := readBody(w, r, 1<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errs.Wrap(errs.BadRequest, err, "bad JSON: "+err.Error())
	}
	if *name != "" && *name != r.PathValue("name") {
		return errs.E(errs.BadRequest, "name %q in the body is not %q in the path", *name, r.PathValue("name"))
	}
	*name = r.PathValue("name")
	return nil
}
