package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sentimentpro/sentiment/model"
)

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", stderr)
	var out string
	fs.StringVar(&out, "out", "", "key file prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pub (required)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "out"); err != nil {
		return err
	}
	pub, priv, err := model.GenerateKey()
	if err != nil {
		return err
	}
	// O_EXCL: never overwrite an existing private key.
	f, err := os.OpenFile(out+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create private key: %w", err)
	}
	if _, err := f.Write(model.MarshalPrivateKey(priv)); err != nil {
		f.Close()
		return fmt.Errorf("cannot write private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write private key: %w", err)
	}
	if err := os.WriteFile(out+".pub", model.MarshalPublicKey(pub), 0o644); err != nil {
		return fmt.Errorf("cannot write public key: %w", err)
	}
	fmt.Fprintf(stdout, "key id %s: private key %s.key, public key %s.pub\n", model.KeyID(pub), out, out)
	return nil
}

func runSign(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sign", stderr)
	var keyPath, modelPath, out string
	fs.StringVar(&keyPath, "key", "", "private key file from keygen (required)")
	fs.StringVar(&modelPath, "model", "", "model artifact, ONNX bundle or bundle directory to sign (required)")
	fs.StringVar(&out, "out", "", "signature file (default: MODEL.sig)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "key", "model"); err != nil {
		return err
	}
	keyData, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("cannot read key: %w", err)
	}
	priv, err := model.ParsePrivateKey(keyData)
	if err != nil {
		return err
	}
	a, err := readArtifact(modelPath) // only valid artifacts get signed
	if err != nil {
		return err
	}
	sig, err := model.Sign(priv, a.digest)
	if err != nil {
		return err
	}
	if out == "" {
		out = sigPath(modelPath)
	}
	if err := writeFileAtomic(out, model.EncodeSignature(sig), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s (%s) with key %s: %s\n", modelPath, sig.Digest, sig.KeyID, out)
	return nil
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	var pubPath, modelPath, sigFile string
	fs.StringVar(&pubPath, "pub", "", "trusted public key file, one or more PEM keys (required)")
	fs.StringVar(&modelPath, "model", "", "model artifact, ONNX bundle or bundle directory (required)")
	fs.StringVar(&sigFile, "sig", "", "signature file (default: MODEL.sig)")
	if err := parse(fs, args, false); err != nil {
		return err
	}
	if err := required(fs, "pub", "model"); err != nil {
		return err
	}
	if sigFile == "" {
		sigFile = sigPath(modelPath)
	}
	pubData, err := os.ReadFile(pubPath)
	if err != nil {
		return fmt.Errorf("cannot read public keys: %w", err)
	}
	keys, err := model.ParsePublicKeys(pubData)
	if err != nil {
		return err
	}
	sigData, err := model.ReadFileLimited(sigFile, 64<<10)
	if err != nil {
		return fmt.Errorf("cannot read signature: %w", err)
	}
	sig, err := model.ParseSignature(sigData)
	if err != nil {
		return err
	}
	a, err := readArtifact(modelPath)
	if err != nil {
		return err
	}
	id, err := model.Verify(sig, a.digest, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "OK: %s (%s) is signed by key %s\n", modelPath, a.digest, id)
	return nil
}
