package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sentimentpro/sentiment/model"
)

// signingKey is the local stack's publisher key, kept across runs in the
// state directory: the registry and the edges trust its public half
// (publishers.pem) and so refuse unsigned models, as a deployment should.
type signingKey struct {
	priv    ed25519.PrivateKey
	pubPath string // the PEM file given to -trusted-keys
}

func loadSigningKey(dir string) (signingKey, error) {
	keyPath, pubPath := filepath.Join(dir, "publisher.key"), filepath.Join(dir, "publishers.pem")
	data, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		pub, priv, err := model.GenerateKey()
		if err != nil {
			return signingKey{}, err
		}
		if err := os.WriteFile(keyPath, model.MarshalPrivateKey(priv), 0o600); err != nil {
			return signingKey{}, fmt.Errorf("cannot write the local signing key: %w", err)
		}
		if err := os.WriteFile(pubPath, model.MarshalPublicKey(pub), 0o644); err != nil {
			return signingKey{}, fmt.Errorf("cannot write the local trusted keys: %w", err)
		}
		return signingKey{priv: priv, pubPath: pubPath}, nil
	}
	if err != nil {
		return signingKey{}, fmt.Errorf("cannot read the local signing key: %w", err)
	}
	priv, err := model.ParsePrivateKey(data)
	if err != nil {
		return signingKey{}, fmt.Errorf("cannot read the local signing key %s: %w", keyPath, err)
	}
	return signingKey{priv: priv, pubPath: pubPath}, nil
}
