// Command hookferry is the webhook service: `hookferry serve` runs it; `token`
// manages API tokens, `migrate` the schema, `prune` and `erase` the stored
// data, `keys` the encryption keys; `hookferry --help` lists them all.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
