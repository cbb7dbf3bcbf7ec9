package edge

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"

	"github.com/valyala/fasthttp"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// decodeBody undoes a request body's content coding, as Triton's HTTP
// client sends it when asked to compress requests: gzip, or deflate in
// its zlib wrapping (RFC 9110 §8.4.1). The body is then read as if it had
// come uncompressed, and may be no larger than max uncompressed, so a
// small body that inflates to gigabytes is a 413 after max+1 bytes. Any
// other coding, or more than one, is a 415 with Accept-Encoding naming the
// codings that would do (RFC 9110 §15.5.16).
func decodeBody(ctx *fasthttp.RequestCtx, max int) error {
	enc := bytes.TrimSpace(ctx.Request.Header.ContentEncoding())
	var open func(io.Reader) (io.ReadCloser, error)
	switch {
	case len(enc) == 0 || bytes.EqualFold(enc, []byte("identity")):
		return nil
	case bytes.EqualFold(enc, []byte("gzip")) || bytes.EqualFold(enc, []byte("x-gzip")):
		open = func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }
	case bytes.EqualFold(enc, []byte("deflate")):
		open = zlib.NewReader
	default:
		ctx.Response.Header.Set("Accept-Encoding", "gzip, deflate")
		return httperr.New(fasthttp.StatusUnsupportedMediaType, "Content-Encoding %q is not supported: send the body uncompressed, gzip or deflate", enc)
	}
	body, err := inflate(open, ctx.Request.Body(), max)
	if err != nil {
		return err
	}
	ctx.Request.Header.Del(fasthttp.HeaderContentEncoding)
	ctx.Request.SetBodyRaw(body)
	return nil
}

// inflate reads at most max bytes out of a compressed body.
func inflate(open func(io.Reader) (io.ReadCloser, error), compressed []byte, max int) ([]byte, error) {
	zr, err := open(bytes.NewReader(compressed))
	if err != nil {
		return nil, httperr.New(fasthttp.StatusBadRequest, "cannot decompress the body: %v", err)
	}
	defer zr.Close()
	body, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	switch {
	case err != nil:
		return nil, httperr.New(fasthttp.StatusBadRequest, "cannot decompress the body: %v", err)
	case len(body) > max:
		return nil, httperr.New(fasthttp.StatusRequestEntityTooLarge, "the body is larger than %d bytes uncompressed", max)
	}
	return body, nil
}
