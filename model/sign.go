package model

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("bad model signature")

// Signature is an ed25519 signature over an artifact digest, as stored next
// to the artifact (file.sapm.sig) and in the registry's version metadata.
type Signature struct {
	Algorithm string `json:"algorithm"` // "ed25519"
	KeyID     string `json:"key_id"`    // first 16 hex digits of SHA-256(public key)
	Digest    string `json:"digest"`    // "sha256:<hex>" of the artifact
	Signature string `json:"signature"` // base64 of the 64-byte signature
}

// signedMessage is what is signed: a context string and the digest, so a
// model signature can never be replayed as another kind of signature.
func signedMessage(digest []byte) []byte {
	return append([]byte("sentiment-model-artifact-v1\x00"), digest...)
}

// KeyID names a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// GenerateKey makes a new signing key pair.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate key: %w", err)
	}
	return pub, priv, nil
}

// Sign signs the artifact digest ("sha256:<hex>") with priv.
func Sign(priv ed25519.PrivateKey, digest string) (Signature, error) {
	d, err := ParseDigest(digest)
	if err != nil {
		return Signature{}, fmt.Errorf("cannot sign: %w", err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, signedMessage(d))
	return Signature{Algorithm: "ed25519", KeyID: KeyID(pub), Digest: digest, Signature: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Verify checks sig against digest and the trusted keys. It returns the
// matching key's ID.
func Verify(sig Signature, digest string, trusted []ed25519.PublicKey) (string, error) {
	if sig.Algorithm != "ed25519" {
		return "", fmt.Errorf("%w: algorithm %q, want ed25519", ErrBadSignature, sig.Algorithm)
	}
	if sig.Digest != digest {
		return "", fmt.Errorf("%w: signed digest %s does not match artifact %s", ErrBadSignature, sig.Digest, digest)
	}
	d, err := ParseDigest(digest)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	raw, err := base64.StdEncoding.DecodeString(sig.Signature)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return "", fmt.Errorf("%w: signature is not %d bytes of base64", ErrBadSignature, ed25519.SignatureSize)
	}
	for _, pub := range trusted {
		if KeyID(pub) == sig.KeyID && ed25519.Verify(pub, signedMessage(d), raw) {
			return sig.KeyID, nil
		}
	}
	return "", fmt.Errorf("%w: no trusted key %q verifies it", ErrBadSignature, sig.KeyID)
}

// ParseSignature decodes a signature document strictly.
func ParseSignature(data []byte) (Signature, error) {
	var sig Signature
	if err := decodeStrict(data, &sig); err != nil {
		return Signature{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return sig, nil
}

// EncodeSignature returns the signature as indented JSON.
func EncodeSignature(sig Signature) []byte {
	b, _ := json.MarshalIndent(sig, "", "  ")
	return append(b, '\n')
}

// MarshalPublicKey encodes a public key as PEM (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// MarshalPrivateKey encodes a private key as PEM (PKCS #8).
func MarshalPrivateKey(priv ed25519.PrivateKey) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ParsePublicKeys decodes one or more PEM public keys (a trust bundle).
func ParsePublicKeys(data []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("PEM block %q is not a PUBLIC KEY", block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cannot parse public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public key is %T, want ed25519", k)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

// ParsePrivateKey decodes a PEM (PKCS #8) ed25519 private key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block found")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("cannot parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want ed25519", k)
	}
	return priv, nil
}
