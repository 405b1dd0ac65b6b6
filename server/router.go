package server

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hookferry/hookferry/gen"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// buildRouter assembles Echo: request id, access log, panic recovery, then for
// /v1 the contract (authenticate, authorise, validate), then the handlers.
func (s *Server) buildRouter() error {
	spec, err := gen.GetSpec()
	if err != nil {
		return fmt.Errorf("server: load embedded spec: %w", err)
	}
	if s.router, err = gorillamux.NewRouter(spec); err != nil {
		return fmt.Errorf("server: route spec: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RequestID())
	e.Use(s.accessLog())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.log.Error("panic", "path", c.Request().URL.Path, "error", err, "stack", string(stack))
		return err
	}}))
	e.Use(s.contract)
	if s.cfg.MetricsHandler != nil {
		e.GET("/metrics", echo.WrapHandler(s.cfg.MetricsHandler))
	}
	if err := s.servePortal(e); err != nil {
		return err
	}
	gen.RegisterHandlers(e, gen.NewStrictHandler(s, nil))
	s.echo = e
	return nil
}

// accessLog writes one line per request: method, path (never the query, which
// could carry secrets), status, duration and request id.
func (s *Server) accessLog() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURIPath: true, LogStatus: true, LogLatency: true, LogRequestID: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			}
			s.log.LogAttrs(c.Request().Context(), level, "request",
				slog.String("method", v.Method), slog.String("path", v.URIPath), slog.Int("status", v.Status),
				slog.Float64("duration_ms", float64(v.Latency.Microseconds())/1000), slog.String("request_id", v.RequestID))
			return nil
		},
	})
}

func isAPIPath(path string) bool { return strings.HasPrefix(path, "/v1/") || path == "/v1" }
