// Package bearer reads the token of an Authorization header that uses the
// Bearer scheme (RFC 6750 §2.1), written as RFC 9110 §11.4 writes
// credentials: the scheme, in any case, then one or more spaces.
package bearer

import "strings"

// Token returns header's bearer token, and false when header names
// another scheme or carries no token.
func Token(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token := strings.TrimLeft(rest, " ")
	return token, token != ""
}
