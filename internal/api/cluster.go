package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/mote-run/mote/internal/auth"
	"github.com/mote-run/mote/internal/cluster"
	"github.com/mote-run/mote/internal/errs"
	"github.com/mote-run/mote/internal/handler"
	"github.com/mote-run/mote/internal/registry"
	"github.com/mote-run/mote/internal/system"
)

// clusterRoutes serves the cluster's state (docs/cluster.md).
func (s *Server) clusterRoutes(h func(handler.Func) http.Handler) {
	deploy, none := fixed(auth.Deploy), audited{}
	s.handle("GET /v1/cluster", deploy, none, h(s.clusterStatus))
	s.handle("GET /v1/cluster/async/{id}", deploy, none, h(s.clusterAsync))
	s.handle("GET /v1/cluster/dlq", deploy, none, h(s.clusterDLQ))
	s.handle("POST /v1/cluster/nodes/{node}/fn/{name}", invokeNeed, none, h(s.invokeOnNode))
}

func (s *Server) node() (*cluster.Node, error) {
	if s.cluster == nil {
		return nil, errs.E(errs.NotFound, "this server is not a node of a cluster (mote serve --cluster-name or --nats)")
	}
	return s.cluster, nil
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	n, err := s.node()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n.Status(r.Context()))
}

func (s *Server) clusterAsync(w http.ResponseWriter, r *http.Request) error {
	n, err := s.node()
	if err != nil {
		return err
	}
	rec, err := n.AsyncStatus(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rec)
}

func (s *Server) clusterDLQ(w http.ResponseWriter, r *http.Request) error {
	n, err := s.node()
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	dl, err := n.DeadLetters(r.Context(), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, dl)
}

// invokeOnNode invokes a function as /fn/{name} does, with every attempt
// run on {node}: for operators and `mote bench cluster`.
func (s *Server) invokeOnNode(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.node(); err != nil {
		return err
	}
	r = r.WithContext(cluster.WithNode(r.Context(), r.PathValue("node")))
	return s.invokeFn(w, r, r.PathValue("name"))
}

// writeChange answers a deploy, rollback or removal: on a cluster where
// some live nodes did not confirm it in time, it took effect all the
// same, and the body says which nodes are missing.
func writeChange(w http.ResponseWriter, status int, v any, err error) error {
	var pd *system.PartialDeploy
	if errors.As(err, &pd) {
		w.Header().Set("X-Mote-Missing-Nodes", strconv.Itoa(len(pd.Missing)))
		if pd.Version == nil {
			return writeJSON(w, http.StatusOK, map[string]any{"missing_nodes": pd.Missing})
		}
		return writeJSON(w, status, struct {
			*registry.Version
			Missing []string `json:"missing_nodes"`
		}{pd.Version, pd.Missing})
	}
	if err != nil {
		return err
	}
	if v == nil {
		w.WriteHeader(status)
		return nil
	}
	return writeJSON(w, status, v)
}
