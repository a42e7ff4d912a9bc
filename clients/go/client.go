// Package capvault is the Go client for the capvault credential broker: an agent holds a Biscuit capability and
// calls upstream APIs through the broker's Proxy RPC, narrows its capability for sub-agents (through the Attenuate
// RPC) and gets every refusal as an *Error with a stable Reason().
package capvault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/capvault/capvault/clients/go/gen/capvault/v1"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// StreamChunkBytes is the largest body chunk a streamed upload sends per message.
const StreamChunkBytes = 64 * 1024

// Client is a capability holder's view of a broker: one gRPC connection, one token.
type Client struct {
	conn  *grpc.ClientConn
	owns  bool
	token string
	proxy pb.ProxyServiceClient
	caps  pb.CapabilityServiceClient
}

// Option configures Connect.
type Option func(*options)

type options struct {
	creds credentials.TransportCredentials
	dial  []grpc.DialOption
}

// WithTransportCredentials makes the connection use these credentials, e.g. credentials.NewTLS(&tls.Config{...}).
// Without it the connection is plaintext (a broker on loopback).
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *options) { o.creds = c }
}

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// Connect opens a connection to the broker at address (host:port) on behalf of capability (sent as
// `authorization: Bearer <token>` on every call). Close it when done.
func Connect(address, capability string, opts ...Option) (*Client, error) {
	o := options{creds: insecure.NewCredentials()}
	for _, opt := range opts {
		opt(&o)
	}
	conn, err := grpc.NewClient(address, append([]grpc.DialOption{grpc.WithTransportCredentials(o.creds)}, o.dial...)...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, owns: true, token: capability, proxy: pb.NewProxyServiceClient(conn), caps: pb.NewCapabilityServiceClient(conn)}, nil
}

// Token is the capability this client sends.
func (c *Client) Token() string { return c.token }

// WithToken is a client for another token (e.g. a sub-agent's narrower one) on the same connection.
func (c *Client) WithToken(token string) *Client {
	return &Client{conn: c.conn, token: token, proxy: c.proxy, caps: c.caps}
}

// Close closes the connection (a client made by WithToken leaves it open).
func (c *Client) Close() error {
	if !c.owns {
		return nil
	}
	return c.conn.Close()
}

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// QueryParam is one query parameter; a slice keeps order and repeats.
type QueryParam struct{ Name, Value string }

// Request is one upstream request: the broker builds the URL from the connection's provider; Path is origin-form.
type Request struct {
	Method  string // default GET
	Path    string
	Query   []QueryParam
	Headers map[string]string
	Body    []byte
	JSON    any // sent as JSON with content-type application/json (instead of Body)
}

func (r Request) proto(connection string) (*pb.HttpRequest, error) {
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = "GET"
	}
	req := &pb.HttpRequest{Connection: connection, Method: method, Path: r.Path, Body: r.Body}
	for _, q := range r.Query {
		req.Query = append(req.Query, &pb.QueryParam{Name: q.Name, Value: q.Value})
	}
	hasType := false
	for k, v := range r.Headers {
		req.Headers = append(req.Headers, &pb.Header{Name: k, Value: v})
		hasType = hasType || strings.EqualFold(k, "content-type")
	}
	if r.JSON != nil {
		if r.Body != nil {
			return nil, localError(ReasonInvalidRequest, "give Body or JSON, not both")
		}
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, localError(ReasonBodyInvalid, err.Error())
		}
		req.Body = b
		if !hasType {
			req.Headers = append(req.Headers, &pb.Header{Name: "content-type", Value: "application/json"})
		}
	}
	return req, nil
}

func headerMap(hs []*pb.Header) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		name := strings.ToLower(h.GetName())
		if prev, ok := out[name]; ok {
			out[name] = prev + ", " + h.GetValue()
		} else {
			out[name] = h.GetValue()
		}
	}
	return out
}

// Response is an upstream answer, whatever its status (a 404 or a 500 is an answer, not an error).
type Response struct {
	Status  int
	Headers map[string]string // allowlisted response headers by lower-case name
	Body    []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// Fetch makes one upstream call (ProxyService/Proxy).
func (c *Client) Fetch(ctx context.Context, connection string, r Request) (*Response, error) {
	req, err := r.proto(connection)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.proxy.Proxy(ctx, &pb.ProxyRequest{Request: req})
	if err != nil {
		return nil, FromError(err)
	}
	return &Response{Status: int(res.GetStatus()), Headers: headerMap(res.GetHeaders()), Body: res.GetBody()}, nil
}

// StreamResponse is a streamed upstream answer: Status and Headers at once, Body as it arrives. Close the body
// (or cancel the context) to stop early: the broker aborts the upstream request.
type StreamResponse struct {
	Status  int
	Headers map[string]string
	Body    io.ReadCloser
}

type streamBody struct {
	stream pb.ProxyService_ProxyStreamClient
	cancel context.CancelFunc
	buf    []byte
	err    error
}

func (b *streamBody) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		msg, err := b.stream.Recv()
		if err == io.EOF {
			b.err = io.EOF
			b.cancel()
			continue
		}
		if err != nil {
			b.err = FromError(err)
			b.cancel()
			continue
		}
		b.buf = msg.GetBodyChunk()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *streamBody) Close() error {
	b.cancel()
	return nil
}

// Stream makes a streamed upload and download (ProxyService/ProxyStream); body may be nil. It returns when the
// upstream's status and headers arrive (the upload runs meanwhile). The context's deadline covers the whole call.
func (c *Client) Stream(ctx context.Context, connection string, r Request, body io.Reader) (*StreamResponse, error) {
	if r.Body != nil || r.JSON != nil {
		if body != nil {
			return nil, localError(ReasonInvalidRequest, "give Request.Body/JSON or a body reader, not both")
		}
		if r.JSON != nil {
			b, err := json.Marshal(r.JSON)
			if err != nil {
				return nil, localError(ReasonBodyInvalid, err.Error())
			}
			r.Body, r.JSON = b, nil
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers["content-type"] = "application/json"
		}
		body, r.Body = bytes.NewReader(r.Body), nil
	}
	head, err := r.proto(connection)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.ctx(ctx)
	stream, err := c.proxy.ProxyStream(ctx)
	if err != nil {
		cancel()
		return nil, FromError(err)
	}
	go func() {
		if stream.Send(&pb.ProxyStreamRequest{Part: &pb.ProxyStreamRequest_Head{Head: head}}) != nil {
			return
		}
		if body != nil {
			buf := make([]byte, StreamChunkBytes)
			for {
				n, err := body.Read(buf)
				if n > 0 && stream.Send(&pb.ProxyStreamRequest{Part: &pb.ProxyStreamRequest_BodyChunk{BodyChunk: bytes.Clone(buf[:n])}}) != nil {
					return
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					cancel()
					return
				}
			}
		}
		_ = stream.CloseSend()
	}()
	first, err := stream.Recv()
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			return nil, localError(ReasonInternal, "the broker closed the stream before the response head")
		}
		return nil, FromError(err)
	}
	h := first.GetHead()
	if h == nil {
		cancel()
		return nil, localError(ReasonInternal, "the broker's first stream message was not a head")
	}
	return &StreamResponse{Status: int(h.GetStatus()), Headers: headerMap(h.GetHeaders()), Body: &streamBody{stream: stream, cancel: cancel}}, nil
}

// Authorize is a dry run (CapabilityService/Authorize): would this request be allowed? Nothing is sent upstream.
func (c *Client) Authorize(ctx context.Context, connection string, r Request) (*pb.AuthorizeResponse, error) {
	req, err := r.proto(connection)
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.caps.Authorize(ctx, &pb.AuthorizeRequest{Token: c.token, Request: req})
	return res, FromError(err)
}

// FieldConstraint requires a query parameter or top-level JSON body field to be present, every occurrence one of Values.
type FieldConstraint struct {
	Name   string
	Values []string
}

// Restriction narrows a capability: every set field adds a check; nothing can widen. See docs/client.md.
type Restriction struct {
	Connections []string
	Methods     []string
	PathPrefix  string
	TTL         time.Duration
	ExpiresAt   time.Time
	Query       []FieldConstraint
	Body        []FieldConstraint
	Checks      []string // raw Datalog checks: exactly one `check if` / `check all` / `reject if` each
}

func (r Restriction) proto() *pb.Restriction {
	out := &pb.Restriction{Connections: r.Connections, Methods: r.Methods, PathPrefix: r.PathPrefix, Checks: r.Checks}
	if r.TTL > 0 {
		out.Ttl = durationpb.New(r.TTL)
	}
	if !r.ExpiresAt.IsZero() {
		out.ExpiresAt = timestamppb.New(r.ExpiresAt)
	}
	for _, q := range r.Query {
		out.Query = append(out.Query, &pb.FieldConstraint{Name: q.Name, Values: q.Values})
	}
	for _, b := range r.Body {
		out.Body = append(out.Body, &pb.FieldConstraint{Name: b.Name, Values: b.Values})
	}
	return out
}

// Attenuate narrows the token through the broker (CapabilityService/Attenuate) and returns the narrower token (the
// client keeps its own). Offline attenuation needs a Biscuit library, and no Go one is available here: see README.
func (c *Client) Attenuate(ctx context.Context, r Restriction) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.caps.Attenuate(ctx, &pb.AttenuateRequest{Token: c.token, Restriction: r.proto()})
	if err != nil {
		return "", FromError(err)
	}
	return res.GetToken(), nil
}

// Inspect returns the token's blocks as structured data (CapabilityService/Inspect).
func (c *Client) Inspect(ctx context.Context) (*pb.InspectResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.caps.Inspect(ctx, &pb.InspectRequest{Token: c.token})
	return res, FromError(err)
}

// PublicKeys returns the broker's root public keys (CapabilityService/ListPublicKeys; needs no capability).
func (c *Client) PublicKeys(ctx context.Context) ([]*pb.PublicKey, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.caps.ListPublicKeys(ctx, &pb.ListPublicKeysRequest{})
	if err != nil {
		return nil, FromError(err)
	}
	return res.GetKeys(), nil
}

// Grant allows method on paths under PathPrefix of one connection.
type Grant struct{ Connection, Method, PathPrefix string }

// Mint mints a capability (CapabilityService/Mint; needs an operator capability).
func (c *Client) Mint(ctx context.Context, tenant, subject string, grants []Grant, ttl time.Duration, operator bool) (*pb.MintResponse, error) {
	req := &pb.MintRequest{Tenant: tenant, Subject: subject, Ttl: durationpb.New(ttl), Operator: operator}
	for _, g := range grants {
		req.Grants = append(req.Grants, &pb.Grant{Connection: g.Connection, Method: g.Method, PathPrefix: g.PathPrefix})
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.caps.Mint(ctx, req)
	return res, FromError(err)
}

// Revoke revokes blocks by revocation id (CapabilityService/Revoke; operator) and returns how many were newly revoked.
func (c *Client) Revoke(ctx context.Context, revocationIDs []string, reason string) (uint32, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	res, err := c.caps.Revoke(ctx, &pb.RevokeRequest{RevocationIds: revocationIDs, Reason: reason})
	if err != nil {
		return 0, FromError(err)
	}
	return res.GetRevoked(), nil
}
