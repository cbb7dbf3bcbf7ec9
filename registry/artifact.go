package registry

import (
	"bytes"
	"errors"
	"io"

	"github.com/sentimentpro/sentiment/model"
	"github.com/sentimentpro/sentiment/model/bundle"
)

// artifactVerifier checks an upload as it streams, in whichever format
// its first bytes say: the built-in one (model.Verifier) or an ONNX
// bundle (bundle.Inspect, fed through a pipe). Close returns what the
// artifact is.
type artifactVerifier struct {
	maxModel int64
	head     []byte // the first bytes, until the format is known
	sapm     *model.Verifier
	bundle   *bundleStream
}

// sniffBytes is how many bytes tell the formats apart: a ustar header's
// magic ends at 263.
const sniffBytes = 263

func newArtifactVerifier(maxModel int64) *artifactVerifier {
	return &artifactVerifier{maxModel: maxModel}
}

func (v *artifactVerifier) Write(p []byte) (int, error) {
	n := len(p)
	if v.sapm == nil && v.bundle == nil {
		v.head = append(v.head, p...)
		if len(v.head) < sniffBytes {
			return n, nil
		}
		if err := v.choose(); err != nil {
			return 0, err
		}
		p, v.head = v.head, nil
	}
	var err error
	if v.sapm != nil {
		_, err = v.sapm.Write(p)
	} else {
		_, err = v.bundle.Write(p)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// choose picks the format from the first bytes.
func (v *artifactVerifier) choose() error {
	switch {
	case bytes.HasPrefix(v.head, []byte(model.Magic)):
		v.sapm = model.NewVerifier()
	case bundle.Sniff(v.head):
		v.bundle = newBundleStream(v.maxModel)
	default:
		return errors.New("neither a model artifact (SAPM) nor an ONNX bundle (sentctl pack)")
	}
	return nil
}

func (v *artifactVerifier) Close() (model.Metadata, error) {
	if v.sapm == nil && v.bundle == nil {
		if bytes.HasPrefix(v.head, []byte(model.Magic)) {
			v.sapm = model.NewVerifier() // short: the verifier says truncated
			v.sapm.Write(v.head)
		} else if err := v.choose(); err != nil {
			return model.Metadata{}, err
		}
	}
	if v.sapm != nil {
		return v.sapm.Close()
	}
	info, err := v.bundle.Close()
	if err != nil {
		return model.Metadata{}, err
	}
	return model.BundleMetadata(info), nil
}

// bundleStream runs bundle.Inspect on the bytes written to it.
type bundleStream struct {
	pw   *io.PipeWriter
	done chan struct{}
	info bundle.Info
	err  error
}

func newBundleStream(maxModel int64) *bundleStream {
	pr, pw := io.Pipe()
	b := &bundleStream{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.info, b.err = bundle.Inspect(pr, maxModel)
		if b.err != nil {
			pr.CloseWithError(b.err) // the upload's next Write fails with it
		}
	}()
	return b
}

func (b *bundleStream) Write(p []byte) (int, error) {
	n, err := b.pw.Write(p)
	if err != nil {
		<-b.done
		if b.err != nil {
			return n, b.err
		}
		return n, err
	}
	return n, nil
}

func (b *bundleStream) Close() (bundle.Info, error) {
	b.pw.Close()
	<-b.done
	return b.info, b.err
}
