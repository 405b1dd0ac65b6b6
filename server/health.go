package server

import (
	"context"
	"time"

	"github.com/hookferry/hookferry/gen"
)

// GetHealth implements getHealth: the process answers.
func (s *Server) GetHealth(context.Context, gen.GetHealthRequestObject) (gen.GetHealthResponseObject, error) {
	return gen.GetHealth200JSONResponse{Status: gen.HealthStatusOk}, nil
}

// GetReadiness implements getReadiness: the database answers and takes writes.
func (s *Server) GetReadiness(ctx context.Context, _ gen.GetReadinessRequestObject) (gen.GetReadinessResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Ready(ctx); err != nil {
		s.log.Warn("readiness: the database does not take writes", "error", err)
		return gen.GetReadiness503JSONResponse{Status: gen.HealthStatusUnavailable}, nil
	}
	return gen.GetReadiness200JSONResponse{Status: gen.HealthStatusOk}, nil
}
