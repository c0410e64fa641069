// Command referenceserver runs the Mapper as a standalone service,
// configured by environment variables (and a .env file when present).
//
//	go run ./referenceserver -demo   # a self-contained demonstration
//	go run ./referenceserver         # the service; see README.md for the variables
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "referenceserver:", err)
		os.Exit(1)
	}
}
