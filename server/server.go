// Package server implements the API of openapi.yaml: gen.StrictServerInterface,
// thin, over the store, behind Echo middleware that authenticates, authorises
// and validates every request against the contract.
package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/metrics"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/webhook"
	"github.com/labstack/echo/v4"
)

// Config is what a deployment decides about the API.
type Config struct {
	MaxWebhooksPerUser  int           // per (tenant, user); 0 means 25
	UnpauseCooldown     time.Duration // between two effective unpauses of a webhook
	AllowPrivateTargets bool          // accept loopback, private and link-local hosts
	RateLimit           int           // /v1 requests per second per tenant, in bursts of twice that; 0 is none
	Catalog             *webhook.Catalog
	MaxBodyBytes        int64            // request bodies, and each event's data in a batch; 0 means 256 KiB
	MaxBatchBytes       int64            // publishEvents bodies; 0 means 5 MiB
	Now                 func() time.Time // nil means time.Now
	Random              io.Reader        // ids and secrets; nil means crypto/rand
	Logger              *slog.Logger     // nil discards
	Metrics             *metrics.Metrics // nil records nothing
	MetricsHandler      http.Handler     // serves GET /metrics; nil for none
	// PublicURL is where browsers reach this deployment (https://hooks.example.com);
	// "" makes portal session URLs relative.
	PublicURL string
	// PortalFrameAncestors is the portal's CSP frame-ancestors; "" means 'self'.
	PortalFrameAncestors string
}

// DefaultMaxBodyBytes bounds request bodies, events included.
const DefaultMaxBodyBytes = 256 << 10

// DefaultMaxBatchBytes bounds the body of a batch of events.
const DefaultMaxBatchBytes = 5 << 20

// DefaultMaxWebhooksPerUser is the per-user limit when the deployment sets none.
const DefaultMaxWebhooksPerUser = 25

// Server serves the hookferry API.
type Server struct {
	store    *store.Store
	cfg      Config
	log      *slog.Logger
	echo     *echo.Echo
	router   routers.Router
	specJSON map[string]any
	limits   *tenantLimits // nil: no rate limit
}

var _ gen.StrictServerInterface = (*Server)(nil)

// New builds the server and its HTTP handler.
func New(st *store.Store, cfg Config) (*Server, error) {
	if st == nil {
		return nil, errors.New("server: no store")
	}
	if cfg.MaxWebhooksPerUser <= 0 {
		cfg.MaxWebhooksPerUser = DefaultMaxWebhooksPerUser
	}
	if cfg.Catalog == nil {
		cfg.Catalog = webhook.DefaultCatalog()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PortalFrameAncestors == "" {
		cfg.PortalFrameAncestors = DefaultPortalFrameAncestors
	}
	if err := CheckFrameAncestors(cfg.PortalFrameAncestors); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{store: st, cfg: cfg, log: cfg.Logger, limits: newTenantLimits(cfg.RateLimit)}
	var err error
	if s.specJSON, err = specJSON(); err != nil {
		return nil, err
	}
	if err := s.buildRouter(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler is the HTTP handler of the whole API.
func (s *Server) Handler() http.Handler { return s.echo }
