package capvault_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	capvault "github.com/capvault/capvault/clients/go"
)

// The live broker these tests run against (test/clients/polyglot.test.ts sets it): CAPVAULT_ADDR,
// CAPVAULT_OPERATOR_TOKEN, CAPVAULT_TENANT, CAPVAULT_CONNECTION. Without them the tests fail; they never skip.
type broker struct{ addr, operator, tenant, connection string }

func liveBroker(t *testing.T) broker {
	t.Helper()
	b := broker{os.Getenv("CAPVAULT_ADDR"), os.Getenv("CAPVAULT_OPERATOR_TOKEN"), os.Getenv("CAPVAULT_TENANT"), os.Getenv("CAPVAULT_CONNECTION")}
	if b.addr == "" || b.operator == "" || b.tenant == "" || b.connection == "" {
		t.Fatal("no broker to test against: set CAPVAULT_ADDR, CAPVAULT_OPERATOR_TOKEN, CAPVAULT_TENANT, CAPVAULT_CONNECTION")
	}
	return b
}

func connect(t *testing.T, addr, token string) *capvault.Client {
	t.Helper()
	c, err := capvault.Connect(addr, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mint(t *testing.T, b broker, grants ...capvault.Grant) string {
	t.Helper()
	res, err := connect(t, b.addr, b.operator).Mint(context.Background(), b.tenant, "go-agent", grants, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	return res.GetToken()
}

func wantReason(t *testing.T, err error, code codes.Code, reason string) *capvault.Error {
	t.Helper()
	var ce *capvault.Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a *capvault.Error %s, got %v", reason, err)
	}
	if ce.Reason() != reason || ce.Code() != code {
		t.Fatalf("want %s %s, got %s %s (%s)", code, reason, ce.Code(), ce.Reason(), ce.Message)
	}
	return ce
}

func TestMintAttenuateProxyDeny(t *testing.T) {
	b := liveBroker(t)
	ctx := context.Background()
	agent := connect(t, b.addr, mint(t, b, capvault.Grant{Connection: b.connection, Method: "GET", PathPrefix: "/repos/acme/"}))

	narrowed, err := agent.Attenuate(ctx, capvault.Restriction{PathPrefix: "/repos/acme/widgets/", Methods: []string{"GET"}, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	sub := agent.WithToken(narrowed)
	info, err := sub.Inspect(ctx)
	if err != nil || len(info.GetBlocks()) != 2 {
		t.Fatalf("inspect: %v %v", info, err)
	}

	res, err := sub.Fetch(ctx, b.connection, capvault.Request{Path: "/repos/acme/widgets/issues", Query: []capvault.QueryParam{{Name: "state", Value: "open"}}})
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Method, URL string
	}
	if res.Status != 200 || res.JSON(&echo) != nil || echo.URL != "/repos/acme/widgets/issues?state=open" {
		t.Fatalf("allowed call: %d %s", res.Status, res.Body)
	}

	_, err = sub.Fetch(ctx, b.connection, capvault.Request{Path: "/repos/acme/secrets"})
	ce := wantReason(t, err, codes.PermissionDenied, capvault.ReasonCapabilityCheckFailed)
	if ce.Metadata["block"] != "1" {
		t.Fatalf("the failing check should be in block 1: %v", ce.Metadata)
	}
	if capvault.ReasonOf(err) != "CAPABILITY_CHECK_FAILED" {
		t.Fatalf("ReasonOf: %s", capvault.ReasonOf(err))
	}

	_, err = sub.Fetch(ctx, b.connection, capvault.Request{Method: "DELETE", Path: "/repos/acme/widgets"})
	wantReason(t, err, codes.PermissionDenied, capvault.ReasonCapabilityCheckFailed) // the sub-agent's method check
	_, err = agent.Fetch(ctx, b.connection, capvault.Request{Method: "DELETE", Path: "/repos/acme/widgets"})
	wantReason(t, err, codes.PermissionDenied, capvault.ReasonNoMatchingGrant) // no grant allows DELETE

	// A narrowed token cannot be widened through the RPC either: the broker adds checks only.
	wider, err := sub.Attenuate(ctx, capvault.Restriction{PathPrefix: "/"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sub.WithToken(wider).Fetch(ctx, b.connection, capvault.Request{Path: "/repos/acme/secrets"})
	wantReason(t, err, codes.PermissionDenied, capvault.ReasonCapabilityCheckFailed)

	// Revoking the sub-agent's block.
	op := connect(t, b.addr, b.operator)
	if n, err := op.Revoke(ctx, []string{info.GetBlocks()[1].GetRevocationId()}, "test"); err != nil || n != 1 {
		t.Fatalf("revoke: %d %v", n, err)
	}
	_, err = sub.Fetch(ctx, b.connection, capvault.Request{Path: "/repos/acme/widgets"})
	wantReason(t, err, codes.Unauthenticated, capvault.ReasonCapabilityRevoked)
}

func TestStream(t *testing.T) {
	b := liveBroker(t)
	agent := connect(t, b.addr, mint(t, b, capvault.Grant{Connection: b.connection, Method: "PUT", PathPrefix: "/upload/"}))
	body := strings.NewReader(strings.Repeat("x", 200_000))
	res, err := agent.Stream(context.Background(), b.connection, capvault.Request{Method: "PUT", Path: "/upload/big.bin"}, body)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil || res.Status != 200 || !strings.Contains(string(got), `"bodyBytes":200000`) {
		t.Fatalf("stream: %d %s %v", res.Status, got, err)
	}
}

func TestErrorsAndDeadlines(t *testing.T) {
	b := liveBroker(t)
	ctx := context.Background()
	_, err := connect(t, b.addr, "not-a-token").Fetch(ctx, b.connection, capvault.Request{Path: "/repos/acme/widgets"})
	wantReason(t, err, codes.Unauthenticated, capvault.ReasonCapabilityMalformed)

	agent := connect(t, b.addr, mint(t, b, capvault.Grant{Connection: b.connection, Method: "GET", PathPrefix: "/repos/acme/"}))
	_, err = agent.Fetch(ctx, b.connection, capvault.Request{Path: "https://evil.example/"})
	wantReason(t, err, codes.InvalidArgument, capvault.ReasonPathInvalid)
	_, err = agent.Fetch(ctx, b.connection, capvault.Request{Method: "POST", Path: "/repos/acme/widgets", JSON: map[string]int{"a": 1}})
	ce := wantReason(t, err, codes.PermissionDenied, capvault.ReasonNoMatchingGrant)
	if capvault.Reasons[ce.Reason()].Code != ce.Code() {
		t.Fatalf("the reason table and the broker disagree on %s", ce.Reason())
	}

	short, cancel := context.WithTimeout(ctx, time.Microsecond)
	defer cancel()
	_, err = agent.Fetch(short, b.connection, capvault.Request{Path: "/repos/acme/widgets"})
	wantReason(t, err, codes.DeadlineExceeded, capvault.ReasonUnknown)
}

// The generated table agrees with itself and with grpc-go's codes (a unit check, no broker).
func TestReasonTable(t *testing.T) {
	if len(capvault.Reasons) < 50 {
		t.Fatalf("only %d reasons", len(capvault.Reasons))
	}
	if capvault.Reasons[capvault.ReasonCapabilityCheckFailed].Code != codes.PermissionDenied ||
		capvault.Reasons[capvault.ReasonCapabilityRevoked].Code != codes.Unauthenticated {
		t.Fatal("unexpected codes")
	}
}
