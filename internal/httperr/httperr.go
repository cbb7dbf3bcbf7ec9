// Package httperr is the one way every service answers with an error. A
// handler returns an *Error: its Msg goes to the client as
// {"error": Msg, "request_id": ID}, its Err goes only to the log. Anything
// else a handler returns is an internal error, and the client learns
// nothing of it but the request ID. WriteHTTP writes it for net/http (the
// registry); internal/frontdoor writes it for fasthttp (edge, geo), with
// the ErrorHandler for requests that could not be parsed, so every body
// has the same shape.
package httperr

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"
)

// Error is a handler's failure with two audiences: Code and Msg for the
// client, Err (which may name addresses, buckets, upstream errors) for the
// log only.
type Error struct {
	Code int
	Msg  string
	Err  error
}

// Error returns the client message and, when set, the cause: what a log
// line shows.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a formatted client message.
func New(code int, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error whose client message is msg and whose cause, err,
// is only logged.
func Wrap(code int, msg string, err error) *Error {
	return &Error{Code: code, Msg: msg, Err: err}
}

// Internal is the client message of an error that is not an *Error.
const Internal = "internal error"

// From returns the status and client message of err: an *Error's own, or
// 500 and Internal for anything else.
func From(err error) (code int, msg string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Msg
	}
	return http.StatusInternalServerError, Internal
}

// AppendBody appends the error body {"error":msg,"request_id":id} and a
// newline.
func AppendBody(dst []byte, msg, id string) []byte {
	dst = append(dst, `{"error":`...)
	dst = AppendJSONString(dst, msg)
	dst = append(dst, `,"request_id":`...)
	dst = AppendJSONString(dst, id)
	return append(dst, '}', '\n')
}

// WriteHTTP writes err's status and body to a net/http response. A 503
// gets Retry-After: 1.
func WriteHTTP(w http.ResponseWriter, err error, id string) {
	code, msg := From(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_, _ = w.Write(AppendBody(make([]byte, 0, 64+len(msg)+len(id)), msg, id))
}

// AppendJSONString appends s as a JSON string literal. Invalid UTF-8
// becomes U+FFFD so the output is always valid JSON; control characters
// and DEL are escaped.
func AppendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Quote returns s as a JSON string literal.
func Quote(s string) string { return string(AppendJSONString(nil, s)) }
