// Command go-agent reads a repository's open issues through a narrowed capability, and handles a denial.
//
//	CAPVAULT_ADDR=127.0.0.1:50051 CAPVAULT_TOKEN=... CAPVAULT_CONNECTION=conn_... go run . acme/widgets
//
// It narrows its capability through the broker (the Attenuate RPC: no Go Biscuit library is available) to GET under
// /repos/<repo>/ for five minutes, reads the issues with the narrower token, then shows what a refusal looks like.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	capvault "github.com/capvault/capvault/clients/go"
)

func main() {
	repo := "acme/widgets"
	if len(os.Args) > 1 {
		repo = os.Args[1]
	}
	if err := run(repo); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(repo string) error {
	address := os.Getenv("CAPVAULT_ADDR")
	if address == "" {
		address = "127.0.0.1:50051"
	}
	connection := os.Getenv("CAPVAULT_CONNECTION")
	cv, err := capvault.Connect(address, os.Getenv("CAPVAULT_TOKEN"))
	if err != nil {
		return err
	}
	defer cv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	narrowed, err := cv.Attenuate(ctx, capvault.Restriction{Methods: []string{"GET"}, PathPrefix: "/repos/" + repo + "/", TTL: 5 * time.Minute})
	if err != nil {
		return err
	}
	reader := cv.WithToken(narrowed)

	res, err := reader.Fetch(ctx, connection, capvault.Request{Path: "/repos/" + repo + "/issues", Query: []capvault.QueryParam{{Name: "state", Value: "open"}}})
	if err != nil {
		return err
	}
	fmt.Printf("GET /repos/%s/issues -> HTTP %d\n%s\n", repo, res.Status, res.Body)

	_, err = reader.Fetch(ctx, connection, capvault.Request{Path: "/repos/acme/secrets"})
	var denied *capvault.Error
	switch {
	case errors.As(err, &denied) && denied.Reason() == capvault.ReasonCapabilityCheckFailed:
		// Branch on the stable reason, never on the message.
		fmt.Printf("denied as expected: %s (block %s, check %s)\n", denied.Reason(), denied.Metadata["block"], denied.Metadata["check"])
	case errors.As(err, &denied) && denied.Reason() == capvault.ReasonCapabilityRevoked:
		return fmt.Errorf("the capability is no longer valid (%s): ask for a new one", denied.Reason())
	case err != nil:
		return err
	default:
		return errors.New("the narrowed capability was not narrow")
	}
	return nil
}
