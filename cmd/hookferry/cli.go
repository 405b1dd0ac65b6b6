package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
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

const usage = `hookferry — a contract-first webhook service

Usage:
  hookferry [serve] [flags]                 run the service (the default)
  hookferry token create --tenant T --user U --permission P [--permission P]
                                            create an API token; prints it alone on stdout
  hookferry token list                      list tokens (never the tokens themselves)
  hookferry token revoke ID_OR_TOKEN        revoke a token by its id or by the token
  hookferry version                         print the version

Every command reads HOOKFERRY_DATABASE_URL (unset: the SQLite file hookferry.db).
Run 'hookferry serve -h' for the service's flags and environment variables.
`

// Run executes one hookferry command and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "token":
		err = tokenCommand(ctx, args, stdout, stderr)
	case "version":
		_, err = fmt.Fprintln(stdout, "hookferry", version())
	case "help":
		_, err = fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "hookferry: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "hookferry %s: %v\n", cmd, err)
		return 2
	default:
		fmt.Fprintf(stderr, "hookferry %s: %v\n", cmd, err)
		return 1
	}
}

// usageError is a command line that makes no sense; it exits 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }
