package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// session is one login. The session cookie carries it sealed with the
// console's key (AES-256-GCM): every registry replica given the same key
// reads it, so a load balancer may send each request anywhere, and
// nobody without the key can read the token in it or forge one.
type session struct {
	ID      string    `json:"id"`
	Token   string    `json:"token"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// sealer seals and opens session cookies, and remembers the sessions
// logged out here until they would have expired.
type sealer struct {
	aead cipher.AEAD
	mu   sync.Mutex
	gone map[string]time.Time // logged-out session IDs → their expiry
}

// newSealer derives the AES-256 key from secret (any length; random when
// empty).
func newSealer(secret []byte) *sealer {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	key := sha256.Sum256(append([]byte("sentiment console session v1\x00"), secret...))
	block, _ := aes.NewCipher(key[:]) // a 32-byte key never fails
	aead, _ := cipher.NewGCM(block)
	return &sealer{aead: aead, gone: map[string]time.Time{}}
}

// seal returns the cookie value for s.
func (k *sealer) seal(s *session) string {
	plain, _ := json.Marshal(s)
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, []byte(sessionCookie)))
}

// open returns the session a cookie value carries, if it was sealed with
// this key, has not expired and was not logged out here.
func (k *sealer) open(value string, now time.Time) (*session, error) {
	data, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(data) < k.aead.NonceSize() {
		return nil, errors.New("not a session cookie")
	}
	plain, err := k.aead.Open(nil, data[:k.aead.NonceSize()], data[k.aead.NonceSize():], []byte(sessionCookie))
	if err != nil {
		return nil, errors.New("a session cookie sealed with another key")
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, errors.New("not a session cookie")
	}
	if now.After(s.Expires) {
		return nil, errors.New("the session has expired")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, out := k.gone[s.ID]; out {
		return nil, errors.New("the session was logged out")
	}
	return &s, nil
}

// logout refuses s from now on here, and forgets logged-out sessions that
// have expired anyway.
func (k *sealer) logout(s *session, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, until := range k.gone {
		if now.After(until) {
			delete(k.gone, id)
		}
	}
	k.gone[s.ID] = s.Expires
}

// current returns the request's live session, or nil.
func (c *Console) current(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s, err := c.sealer.open(ck.Value, c.cfg.Now())
	if err != nil {
		return nil
	}
	return s
}
