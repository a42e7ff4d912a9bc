package capvault

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is every refusal or failure of a call: the gRPC code, the broker's stable reason (ReasonUnknown when the
// error did not come from the broker, e.g. the caller's own deadline or an unreachable broker), the ErrorInfo
// metadata (e.g. {"block": "1", "check": "0"}) and a public message. Branch on Reason(), never on the message.
type Error struct {
	code     codes.Code
	reason   string
	Metadata map[string]string
	Message  string
	status   *status.Status
}

// ReasonUnknown is the reason of an error that carries no capvault ErrorInfo.
const ReasonUnknown = "UNKNOWN"

// Code is the gRPC status code.
func (e *Error) Code() codes.Code { return e.code }

// Reason is the stable UPPER_SNAKE reason (see Reasons).
func (e *Error) Reason() string { return e.reason }

func (e *Error) Error() string {
	return fmt.Sprintf("capvault: %s %s: %s", e.code, e.reason, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the original status.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Is matches another *Error with the same reason (errors.Is(err, &capvault.Error{...}) is rarely needed: use ReasonOf).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.reason == e.reason && t.code == e.code
}

// FromError converts an error returned by a gRPC call into an *Error, decoding the google.rpc.Status details
// (grpc-status-details-bin) for the capvault ErrorInfo. nil stays nil; an *Error is returned as is.
func FromError(err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	out := &Error{code: st.Code(), reason: ReasonUnknown, Message: st.Message(), status: st, Metadata: map[string]string{}}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			out.reason = info.GetReason()
			for k, v := range info.GetMetadata() {
				out.Metadata[k] = v
			}
		}
	}
	return out
}

// ReasonOf is the capvault reason of an error ("" for nil, ReasonUnknown for an error without one).
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var ce *Error
	if errors.As(FromError(err), &ce) {
		return ce.reason
	}
	return ReasonUnknown
}

// localError is an error the client raises itself, for a reason of the broker's table.
func localError(reason, message string) *Error {
	info := Reasons[reason]
	if message == "" {
		message = info.Message
	}
	return &Error{code: info.Code, reason: reason, Message: message, status: status.New(info.Code, message), Metadata: map[string]string{}}
}
