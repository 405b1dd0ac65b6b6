package main

import (
	"errors"
	"net/url"
	"time"

	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
)

// Config is the service's configuration: each tagged field is a flag of
// `hookferry serve` whose default comes from its HOOKFERRY_ environment
// variable. The database and key settings are shared by every command
// (storeFlags) and copied in by serve.
type Config struct {
	Addr                 string        `name:"addr" env:"HOOKFERRY_ADDR" default:":8080" placeholder:"HOST:PORT" help:"Listen address (default: ${default})."`
	MaxWebhooksPerUser   int           `name:"max-webhooks-per-user" env:"HOOKFERRY_MAX_WEBHOOKS_PER_USER" default:"25" placeholder:"N" help:"Webhooks one user may register, at least 1 (default: ${default})."`
	UnpauseCooldown      time.Duration `name:"unpause-cooldown" env:"HOOKFERRY_UNPAUSE_COOLDOWN" default:"10s" placeholder:"D" help:"Least time between two effective unpauses of a webhook (default: ${default})."`
	EventTypes           string        `name:"event-types" env:"HOOKFERRY_EVENT_TYPES" placeholder:"FILE|LIST" help:"Event type catalog: a file (one name a line) or a comma list; unset means the built-in catalog."`
	AllowPrivateTargets  bool          `name:"allow-private-targets" env:"HOOKFERRY_ALLOW_PRIVATE_TARGETS" help:"Accept webhook URLs on loopback, private and link-local hosts, and deliver to them."`
	PublicURL            string        `name:"public-url" env:"HOOKFERRY_PUBLIC_URL" placeholder:"URL" help:"Where browsers reach this deployment (https://hooks.example.com); makes portal session URLs absolute (unset: relative)."`
	PortalFrameAncestors string        `name:"portal-frame-ancestors" env:"HOOKFERRY_PORTAL_FRAME_ANCESTORS" default:"'self'" placeholder:"SOURCES" help:"CSP frame-ancestors of the portal: the pages that may embed it in a frame, space-separated (default: ${default})."`
	MaxBatchBytes        int64         `name:"max-batch-bytes" env:"HOOKFERRY_MAX_BATCH_BYTES" default:"5242880" placeholder:"N" help:"Largest body of POST /v1/events/batch, in bytes, at least 262144 (default: ${default}, 5 MiB)."`
	RateLimit            int           `name:"rate-limit" env:"HOOKFERRY_RATE_LIMIT" default:"0" placeholder:"N" help:"API requests per second per tenant in this instance, in bursts of twice that; 0 is no limit (default: ${default})."`
	DebugAddr            string        `name:"debug-addr" env:"HOOKFERRY_DEBUG_ADDR" placeholder:"HOST:PORT" help:"Serve Go's profiler (net/http/pprof, /debug/pprof/) on this address, such as 127.0.0.1:6060; unset is off. It has no authentication: keep it on loopback."`
	LogFormat            string        `name:"log-format" env:"HOOKFERRY_LOG_FORMAT" default:"text" enum:"text,json" help:"Log format: text or json (default: ${default})."`
	LogLevel             string        `name:"log-level" env:"HOOKFERRY_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn or error (default: ${default})."`
	ShutdownTimeout      time.Duration `name:"shutdown-timeout" env:"HOOKFERRY_SHUTDOWN_TIMEOUT" default:"30s" placeholder:"D" help:"How long in-flight requests and delivery attempts may finish after SIGTERM (default: ${default})."`
	Retention            time.Duration `name:"retention" env:"HOOKFERRY_RETENTION" default:"720h" placeholder:"D" help:"Delivered and failed deliveries, their attempts and events older than this are pruned; 0 keeps everything (default: ${default})."`
	PruneInterval        time.Duration `name:"prune-interval" env:"HOOKFERRY_PRUNE_INTERVAL" default:"10m" placeholder:"D" help:"How often to prune, above 0 (default: ${default})."`

	Delivery           bool            `name:"delivery" env:"HOOKFERRY_DELIVERY" default:"true" negatable:"" help:"Run delivery workers here; --no-delivery (false) makes an API-only instance."`
	DeliveryCAFile     string          `name:"delivery-ca-file" env:"HOOKFERRY_DELIVERY_CA_FILE" placeholder:"PEM" help:"PEM file of extra root certificates to trust for webhook targets."`
	RetrySchedule      []time.Duration `name:"retry-schedule" env:"HOOKFERRY_RETRY_SCHEDULE" default:"5s,5m,30m,2h,5h,10h,10h" type:"schedule" placeholder:"D,D,…" help:"Delay before each retry after the first attempt; its length is the number of retries (default: ${default})."`
	DeliveryTimeout    time.Duration   `name:"delivery-timeout" env:"HOOKFERRY_DELIVERY_TIMEOUT" default:"15s" placeholder:"D" help:"Time one delivery attempt may take (default: ${default})."`
	DeliveryLease      time.Duration   `name:"delivery-lease" env:"HOOKFERRY_DELIVERY_LEASE" default:"60s" placeholder:"D" help:"How long a claimed delivery stays with an instance that may have died; longer than the timeout (default: ${default})."`
	AutoPauseAfter     time.Duration   `name:"auto-pause-after" env:"HOOKFERRY_AUTO_PAUSE_AFTER" default:"24h" placeholder:"D" help:"Pause a webhook whose deliveries have failed without success for this long (default: ${default})."`
	DeliveryWorkers    int             `name:"delivery-workers" env:"HOOKFERRY_DELIVERY_WORKERS" default:"64" placeholder:"N" help:"Delivery attempts in flight in this instance, at least 1 (default: ${default})."`
	DeliveryPerWebhook int             `name:"delivery-per-webhook" env:"HOOKFERRY_DELIVERY_PER_WEBHOOK" default:"16" placeholder:"N" help:"Delivery attempts in flight to one webhook from this instance, at least 1 (default: ${default})."`
	DeliveryPerTenant  int             `name:"delivery-per-tenant" env:"HOOKFERRY_DELIVERY_PER_TENANT" placeholder:"N" help:"Delivery workers one tenant may hold in this instance (default: half of delivery-workers)."`
	DeliveryPerUser    int             `name:"delivery-per-user" env:"HOOKFERRY_DELIVERY_PER_USER" placeholder:"N" help:"Delivery workers one user may hold in this instance (default: a quarter of delivery-workers)."`
	DeliveryHeldBack   int             `name:"delivery-held-back-workers" env:"HOOKFERRY_DELIVERY_HELD_BACK_WORKERS" placeholder:"N" help:"Extra workers for webhooks held back because their attempts hang or fail (default: a quarter of delivery-workers)."`
	DeliverySlowAfter  time.Duration   `name:"delivery-slow-after" env:"HOOKFERRY_DELIVERY_SLOW_AFTER" default:"1s" placeholder:"D" help:"An attempt longer than this holds its webhook back and gives its worker to others (default: ${default})."`

	// DatabaseURL is HOOKFERRY_DATABASE_URL; "" is the SQLite file hookferry.db.
	DatabaseURL string `kong:"-"`
	// EncryptionKeys is HOOKFERRY_ENCRYPTION_KEYS, EncryptionKeysFile
	// HOOKFERRY_ENCRYPTION_KEYS_FILE; with neither, SQLite uses (and makes)
	// hookferry.key beside the database and PostgreSQL refuses to start.
	EncryptionKeys     string `kong:"-"`
	EncryptionKeysFile string `kong:"-"`
	// Migrate is what to do with pending migrations; the zero value applies them.
	Migrate store.MigrateMode `kong:"-"`
}

// Validate checks what the types alone cannot; the delivery settings only
// where delivery runs, so an API-only instance does not trip on them.
func (c *Config) Validate() error {
	for _, err := range []error{checkPublicURL(c.PublicURL), server.CheckFrameAncestors(c.PortalFrameAncestors)} {
		if err != nil {
			return usageError{err}
		}
	}
	switch {
	case c.MaxWebhooksPerUser < 1:
		return usagef("max-webhooks-per-user must be at least 1")
	case c.UnpauseCooldown < 0:
		return usagef("unpause-cooldown must not be negative")
	case c.MaxBatchBytes < server.DefaultMaxBodyBytes:
		return usagef("max-batch-bytes must be at least %d, the limit of one event", server.DefaultMaxBodyBytes)
	case c.RateLimit < 0:
		return usagef("rate-limit must not be negative (0 is no limit)")
	case c.ShutdownTimeout < 0:
		return usagef("shutdown-timeout must not be negative")
	case c.Retention < 0:
		return usagef("retention must not be negative (0 keeps everything)")
	case c.PruneInterval <= 0:
		return usagef("prune-interval must be positive")
	case !c.Delivery:
		return nil
	case c.DeliveryTimeout <= 0:
		return usagef("delivery-timeout must be positive")
	case c.DeliveryLease < 2*(c.DeliveryTimeout+time.Second):
		return usagef("delivery-lease (%s) must be at least twice delivery-timeout plus one second (%s)", c.DeliveryLease, 2*(c.DeliveryTimeout+time.Second))
	case c.AutoPauseAfter <= 0:
		return usagef("auto-pause-after must be positive")
	case c.DeliveryWorkers < 1 || c.DeliveryPerWebhook < 1:
		return usagef("delivery-workers and delivery-per-webhook must be at least 1")
	case c.DeliveryPerTenant < 0 || c.DeliveryPerUser < 0 || c.DeliveryHeldBack < 0:
		return usagef("delivery-per-tenant, delivery-per-user and delivery-held-back-workers must not be negative (0 takes the default)")
	case c.DeliverySlowAfter <= 0:
		return usagef("delivery-slow-after must be positive")
	}
	return nil
}

// checkPublicURL accepts "" or an absolute http(s) URL with no query or fragment.
func checkPublicURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || v[len(v)-1] == '?' || v[len(v)-1] == '#' {
		return errors.New("public-url must be an absolute http(s) URL without user-info, query or fragment, such as https://hooks.example.com")
	}
	return nil
}
