package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// Version is the build's version, set with -ldflags "-X main.Version=…".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// cli is the command line: the flags every command reads, then the commands.
type cli struct {
	storeFlags

	Version kong.VersionFlag `help:"Print the version and exit."`

	Serve   serveCmd   `cmd:"" default:"withargs" help:"Run the service (the default when no command is given)."`
	Token   tokenCmd   `cmd:"" help:"Create, list and revoke API tokens."`
	Migrate migrateCmd `cmd:"" help:"Apply or inspect the database schema migrations."`
	Prune   pruneCmd   `cmd:"" help:"Remove finished deliveries, their attempts and events older than the retention."`
	Erase   eraseCmd   `cmd:"" help:"Remove every webhook, delivery, attempt and token of a user or of a whole tenant."`
	Keys    keysCmd    `cmd:"" help:"Make a new encryption key, or re-encrypt every signing secret under the first key."`
	Ver     versionCmd `cmd:"" name:"version" help:"Print the version."`
	Help    helpCmd    `cmd:"" help:"List the commands, or show the help of one (hookferry help token create)."`
}

// console is where a command writes: stdout for its result, stderr for
// notes and logs.
type console struct {
	stdout, stderr io.Writer
}

// exitCode carries kong's exit (after --help or --version) out of Parse.
type exitCode int

// Run executes one hookferry command line and returns the process exit code:
// 0 done, 1 failed, 2 the command line or configuration makes no sense.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	parser, err := newParser(ctx, &c, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "hookferry: %v\n", err)
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			exit, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(exit)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		var perr *kong.ParseError
		name := "hookferry"
		if errors.As(err, &perr) && perr.Context != nil {
			if cmd := commandPath(perr.Context); cmd != "" {
				name += " " + cmd
			}
		}
		var uerr usageError
		switch {
		case errors.As(err, &uerr):
			err = uerr // our own validation says it all, without kong's prefix
		case name == "hookferry serve" && !slices.Contains(args, "serve") && strings.HasPrefix(err.Error(), "unexpected argument"):
			// The default command got a word that names no command.
			name, err = "hookferry", fmt.Errorf("unknown command: %s", strings.TrimPrefix(err.Error(), "unexpected argument "))
		}
		fmt.Fprintf(stderr, "%s: %s (see %s --help)\n", name, oneLine(err), name)
		return 2
	}
	err = kctx.Run(ctx, console{stdout: stdout, stderr: stderr}, &c.storeFlags)
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "hookferry %s: %s\n", commandPath(kctx), oneLine(err))
		return 2
	default:
		fmt.Fprintf(stderr, "hookferry %s: %s\n", commandPath(kctx), oneLine(err))
		return 1
	}
}

func newParser(ctx context.Context, c *cli, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("hookferry"),
		kong.Description("hookferry is a contract-first webhook service. Every setting is a flag whose default comes from its HOOKFERRY_ environment variable; flags go before or after the command name."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.Vars{"version": "hookferry " + version()},
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.NamedMapper("schedule", scheduleMapper{}),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, NoExpandSubcommands: false}),
	)
}

// commandPath names the selected command without its arguments ("token create").
func commandPath(kctx *kong.Context) string {
	node := kctx.Selected()
	if node == nil {
		return ""
	}
	return node.FullPath()[len("hookferry "):]
}

// oneLine keeps a usage error to one line.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// usageError is a command line or configuration that makes no sense; it exits 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// versionCmd prints the version, as --version does.
type versionCmd struct{}

func (versionCmd) Run(out console) error {
	_, err := fmt.Fprintln(out.stdout, "hookferry", version())
	return err
}

// helpCmd shows the help of the application or of one command.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"The command to explain, such as: token create."`
}

func (h helpCmd) Run(ctx context.Context, kctx *kong.Context) error {
	var c cli
	parser, err := newParser(ctx, &c, kctx.Stdout, kctx.Stderr)
	if err != nil {
		return err
	}
	// --help prints and exits 0 (through the exitCode panic, caught in Run).
	if _, err := parser.Parse(append(append([]string{}, h.Command...), "--help")); err != nil {
		return usageError{err}
	}
	return nil
}

// scheduleMapper reads a comma list of durations, each at least 0; an empty
// list means no retries (not the default schedule).
type scheduleMapper struct{}

func (scheduleMapper) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	var raw string
	if err := ctx.Scan.PopValueInto("durations", &raw); err != nil {
		return err
	}
	ds, err := parseSchedule(raw)
	if err != nil {
		return err
	}
	target.Set(reflect.ValueOf(ds))
	return nil
}

// parseSchedule reads a comma list of durations, each at least 0.
func parseSchedule(v string) ([]time.Duration, error) {
	out := []time.Duration{} // empty: no retries
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
	return out, nil
}

// lookupEnv is os.LookupEnv; the encryption keys are read from the
// environment only, never from a flag that ps would show.
var lookupEnv = os.LookupEnv
