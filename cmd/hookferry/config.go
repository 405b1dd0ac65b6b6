package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
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
	e.duration(&c.ShutdownTimeout, "shutdown-timeout", "HOOKFERRY_SHUTDOWN_TIMEOUT", 30*time.Second, "how long in-flight requests may finish after SIGTERM")
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
	}
	return fs, nil
}
