// Command testdb runs FerretDB (a MongoDB wire-compatible server) with its SQLite backend for capvault's tests.
// It embeds github.com/FerretDB/FerretDB/ferretdb because `go install .../cmd/ferretdb` panics outside
// FerretDB's own repository (upstream issue #2982).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/FerretDB/FerretDB/build/version"
	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	sqliteURL := flag.String("sqlite-url", "", "SQLite backend URL, e.g. file:/abs/dir/ (must end with /)")
	printVersion := flag.Bool("version", false, "print the FerretDB version and exit")
	flag.Parse()

	// Report the real FerretDB module version (buildInfo's ferretdbVersion) instead of "unknown".
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/FerretDB/FerretDB" {
				version.Get().Version = dep.Version
			}
		}
	}
	if *printVersion {
		fmt.Println(version.Get().Version)
		return
	}
	if *sqliteURL == "" {
		fmt.Fprintln(os.Stderr, "testdb: --sqlite-url is required")
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("ferretdb %s listening on %s\n", version.Get().Version, *listen)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		os.Exit(1)
	}
}
