package modelbox

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a call the server refused or could not answer. It carries the gRPC status code,
// so status.Code(err) and errors.Is(err, modelbox.ErrNotFound) both work on it.
type Error struct {
	Code    codes.Code
	Message string
	Target  string // host:port of the server
}

func (e *Error) Error() string {
	if e.Code == codes.Unauthenticated {
		return fmt.Sprintf("modelbox server %s refused the token (%s); set MODELBOX_TOKEN or Options.Token to the server's --token", e.Target, e.Message)
	}
	return fmt.Sprintf("modelbox server %s: %s: %s", e.Target, e.Code, e.Message)
}

// GRPCStatus lets status.Code and status.FromError see the code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// Is matches the sentinel errors below by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Target == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrNotFound           = &Error{Code: codes.NotFound}
	ErrInvalidArgument    = &Error{Code: codes.InvalidArgument}
	ErrUnauthenticated    = &Error{Code: codes.Unauthenticated}
	ErrUnavailable        = &Error{Code: codes.Unavailable}
	ErrFailedPrecondition = &Error{Code: codes.FailedPrecondition}
	ErrDataLoss           = &Error{Code: codes.DataLoss}
)

// Code is the gRPC code of an error returned by this package (codes.OK for nil, codes.Unknown
// for an error that carries none).
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}

func (c *Client) wrap(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	s, ok := status.FromError(err)
	if !ok {
		return &Error{Code: codes.Unknown, Message: err.Error(), Target: c.target}
	}
	return &Error{Code: s.Code(), Message: s.Message(), Target: c.target}
}

// retryable: the server is away, restarting or shutting down; the same request may be re-sent.
func retryable(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.Canceled || code == codes.Aborted
}
