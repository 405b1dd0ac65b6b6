package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the service's configuration: each field is a flag of `hookferry
// serve` whose default comes from its HOOKFERRY_ environment variable.
type Config struct {
	Addr                string
	DatabaseURL         string
	MaxWebhooksPerUser  int
	UnpauseCooldown     time.Duration
	EventTypes          string
	AllowPrivateTargets bool
	LogFormat           string
	LogLevel            string
	ShutdownTimeout     time.Duration

	Delivery           bool // run delivery workers in this instance
	DeliveryCAFile     string
	RetrySchedule      []time.Duration
	DeliveryTimeout    time.Duration
	DeliveryLease      time.Duration
	AutoPauseAfter     time.Duration
	DeliveryWorkers    int
	DeliveryPerWebhook int
}

// envFlags binds flags to fs with defaults from the environment; a malformed
// variable is an error, not a silent default.
type envFlags struct {
	fs   *flag.FlagSet
	errs []error
}

func (e *envFlags) string(p *string, name, env, def, help string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, help+" ($"+env+")")
}

func (e *envFlags) int(p *int, name, env string, def int, help string) {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("$%s: %q is not an integer", env, v))
		}
		def = n
	}
	e.fs.IntVar(p, name, def, help+" ($"+env+")")
}

func (e *envFlags) duration(p *time.Duration, name, env string, def time.Duration, help string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("$%s: %q is not a duration such as 10s or 500ms", env, v))
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, help+" ($"+env+")")
}

func (e *envFlags) durations(p *[]time.Duration, name, env, def, help string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	set := func(v string) error {
		ds, err := parseSchedule(v)
		if err != nil {
			return err
		}
		*p = ds
		return nil
	}
	if err := set(def); err != nil {
		e.errs = append(e.errs, fmt.Errorf("$%s: %w", env, err))
	}
	e.fs.Func(name, help+" ($"+env+", default "+def+")", set)
}

// parseSchedule reads a comma list of durations, each at least 0.
func parseSchedule(v string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a comma list of durations such as 5s,5m,30m", v)
		}
		out = append(out, d)
	}
	if out == nil {
		out = []time.Duration{} // no retries
	}
	return out, nil
}

func (e *envFlags) bool(p *bool, name, env string, def bool, help string) {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("$%s: %q is not true or false", env, v))
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, help+" ($"+env+")")
}

// databaseFlag binds --database-url alone, for the token commands.
func databaseFlag(e *envFlags, p *string) {
	e.string(p, "database-url", "HOOKFERRY_DATABASE_URL", "", "database: postgres://… or sqlite:PATH; unset means the SQLite file hookferry.db")
}

// parseServeFlags reads the serve configuration from args and the environment.
func parseServeFlags(args []string, c *Config) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	e := &envFlags{fs: fs}
	e.string(&c.Addr, "addr", "HOOKFERRY_ADDR", ":8080", "listen address")
	databaseFlag(e, &c.DatabaseURL)
	e.int(&c.MaxWebhooksPerUser, "max-webhooks-per-user", "HOOKFERRY_MAX_WEBHOOKS_PER_USER", 25, "webhooks one user may register")
	e.duration(&c.UnpauseCooldown, "unpause-cooldown", "HOOKFERRY_UNPAUSE_COOLDOWN", 10*time.Second, "least time between two effective unpauses of a webhook")
	e.string(&c.EventTypes, "event-types", "HOOKFERRY_EVENT_TYPES", "", "event type catalog: a file (one name per line) or a comma list; unset means the built-in catalog")
	e.bool(&c.AllowPrivateTargets, "allow-private-targets", "HOOKFERRY_ALLOW_PRIVATE_TARGETS", false, "accept webhook URLs on loopback, private and link-local hosts")
	e.string(&c.LogFormat, "log-format", "HOOKFERRY_LOG_FORMAT", "text", "log format: text or json")
	e.string(&c.LogLevel, "log-level", "HOOKFERRY_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	e.duration(&c.ShutdownTimeout, "shutdown-timeout", "HOOKFERRY_SHUTDOWN_TIMEOUT", 30*time.Second, "how long in-flight requests and delivery attempts may finish after SIGTERM")
	e.bool(&c.Delivery, "delivery", "HOOKFERRY_DELIVERY", true, "run delivery workers here; false makes an API-only instance")
	e.string(&c.DeliveryCAFile, "delivery-ca-file", "HOOKFERRY_DELIVERY_CA_FILE", "", "PEM file of extra root certificates to trust for webhook targets")
	e.durations(&c.RetrySchedule, "retry-schedule", "HOOKFERRY_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h", "delay before each retry after the first attempt; its length is the number of retries")
	e.duration(&c.DeliveryTimeout, "delivery-timeout", "HOOKFERRY_DELIVERY_TIMEOUT", 15*time.Second, "time one delivery attempt may take")
	e.duration(&c.DeliveryLease, "delivery-lease", "HOOKFERRY_DELIVERY_LEASE", 60*time.Second, "how long a claimed delivery stays with a worker that may have died; longer than the timeout")
	e.duration(&c.AutoPauseAfter, "auto-pause-after", "HOOKFERRY_AUTO_PAUSE_AFTER", 24*time.Hour, "pause a webhook whose deliveries have failed without success for this long")
	e.int(&c.DeliveryWorkers, "delivery-workers", "HOOKFERRY_DELIVERY_WORKERS", 64, "delivery attempts in flight in this instance")
	e.int(&c.DeliveryPerWebhook, "delivery-per-webhook", "HOOKFERRY_DELIVERY_PER_WEBHOOK", 16, "delivery attempts in flight to one webhook from this instance")
	if len(e.errs) > 0 {
		return fs, usageError{e.errs[0]}
	}
	if err := fs.Parse(args); err != nil {
		return fs, err
	}
	if fs.NArg() > 0 {
		return fs, usagef("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.MaxWebhooksPerUser < 1:
		return fs, usagef("max-webhooks-per-user must be at least 1")
	case c.UnpauseCooldown < 0:
		return fs, usagef("unpause-cooldown must not be negative")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fs, usagef("log-format must be text or json")
	case c.DeliveryTimeout <= 0:
		return fs, usagef("delivery-timeout must be positive")
	case c.DeliveryLease <= c.DeliveryTimeout:
		return fs, usagef("delivery-lease (%s) must be longer than delivery-timeout (%s)", c.DeliveryLease, c.DeliveryTimeout)
	case c.AutoPauseAfter <= 0:
		return fs, usagef("auto-pause-after must be positive")
	case c.DeliveryWorkers < 1 || c.DeliveryPerWebhook < 1:
		return fs, usagef("delivery-workers and delivery-per-webhook must be at least 1")
	}
	return fs, nil
}
