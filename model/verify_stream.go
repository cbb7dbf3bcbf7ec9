package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
)

// Verifier checks an artifact as it streams past, with memory bounded by
// the header size: the registry validates uploads of any size without
// holding them. Write returns an error as soon as the bytes cannot be a
// valid artifact (bad magic, header, oversize, non-finite weight); Close
// checks the length and the SHA-256 trailer and returns the header.
type Verifier struct {
	n       int64 // bytes seen
	prefix  [prefixSize]byte
	header  []byte
	hlen    int64
	total   int64 // expected size, known once the header is parsed
	md      Metadata
	body    hash.Hash // SHA-256 of everything before the trailer
	trailer []byte
	word    [4]byte // a weight split across writes
	nword   int
	err     error
}

// NewVerifier returns a Verifier for one artifact.
func NewVerifier() *Verifier { return &Verifier{body: sha256.New()} }

// Write feeds the next bytes of the artifact.
func (v *Verifier) Write(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n := len(p)
	for len(p) > 0 && v.err == nil {
		p = v.step(p)
	}
	if v.err != nil {
		return 0, v.err
	}
	return n, nil
}

func (v *Verifier) fail(err error) []byte {
	v.err = err
	return nil
}

// step consumes some of p according to where in the artifact we are and
// returns the rest.
func (v *Verifier) step(p []byte) []byte {
	switch {
	case v.n < prefixSize:
		k := copy(v.prefix[v.n:], p)
		v.body.Write(p[:k])
		v.n += int64(k)
		if v.n == prefixSize {
			return v.checkPrefix(p[k:])
		}
		return p[k:]
	case v.n < prefixSize+v.hlen:
		k := min(int64(len(p)), prefixSize+v.hlen-v.n)
		v.header = append(v.header, p[:k]...)
		v.body.Write(p[:k])
		v.n += k
		if v.n == prefixSize+v.hlen {
			return v.checkHeader(p[k:])
		}
		return p[k:]
	case v.n < v.total-checksumSize:
		k := min(int64(len(p)), v.total-checksumSize-v.n)
		v.checkWeights(p[:k])
		v.body.Write(p[:k])
		v.n += k
		return p[k:]
	default:
		k := min(int64(len(p)), v.total-v.n)
		if k == 0 {
			return v.fail(fmt.Errorf("%w: more than the %d bytes its header implies", ErrSizeMismatch, v.total))
		}
		v.trailer = append(v.trailer, p[:k]...)
		v.n += k
		return p[k:]
	}
}

func (v *Verifier) checkPrefix(rest []byte) []byte {
	if string(v.prefix[:4]) != Magic {
		return v.fail(fmt.Errorf("%w: %q", ErrBadMagic, v.prefix[:4]))
	}
	if ver := binary.LittleEndian.Uint16(v.prefix[4:]); ver != FormatVersion {
		return v.fail(fmt.Errorf("%w: %d (this build reads %d)", ErrUnsupportedVersion, ver, FormatVersion))
	}
	v.hlen = int64(binary.LittleEndian.Uint32(v.prefix[8:]))
	if v.hlen == 0 || v.hlen > MaxHeaderSize {
		return v.fail(fmt.Errorf("%w: header length %d outside 1..%d", ErrBadHeader, v.hlen, MaxHeaderSize))
	}
	return rest
}

func (v *Verifier) checkHeader(rest []byte) []byte {
	if err := decodeStrict(v.header, &v.md); err != nil {
		return v.fail(fmt.Errorf("%w: %v", ErrBadHeader, err))
	}
	if err := v.md.Validate(); err != nil {
		return v.fail(fmt.Errorf("%w: %v", ErrBadHeader, err))
	}
	v.total = prefixSize + v.hlen + 4<<v.md.Features.HashBits + 4 + checksumSize
	return rest
}

func (v *Verifier) checkWeights(p []byte) {
	for len(p) > 0 {
		k := copy(v.word[v.nword:], p)
		v.nword += k
		p = p[k:]
		if v.nword < 4 {
			return
		}
		v.nword = 0
		if x := math.Float32frombits(binary.LittleEndian.Uint32(v.word[:])); !finite(x) {
			v.err = fmt.Errorf("%w: entry at byte %d is %v", ErrBadWeights, v.n, x)
			return
		}
		// Fast path: whole words straight from p.
		for len(p) >= 4 {
			if x := math.Float32frombits(binary.LittleEndian.Uint32(p)); !finite(x) {
				v.err = fmt.Errorf("%w: entry is %v", ErrBadWeights, x)
				return
			}
			p = p[4:]
		}
	}
}

// Close reports whether what was written is a complete, valid artifact,
// and returns its header.
func (v *Verifier) Close() (Metadata, error) {
	if v.err != nil {
		return Metadata{}, v.err
	}
	if v.total == 0 || v.n < v.total {
		return Metadata{}, fmt.Errorf("%w: %d bytes", ErrTruncated, v.n)
	}
	if sum := v.body.Sum(nil); !bytes.Equal(sum, v.trailer) {
		return Metadata{}, fmt.Errorf("%w: content hashes to %x", ErrChecksum, sum[:8])
	}
	return v.md, nil
}

// Size is the number of bytes written so far.
func (v *Verifier) Size() int64 { return v.n }

// Header returns the artifact header once enough bytes were written to
// parse it, without requiring the rest of the artifact.
func (v *Verifier) Header() (Metadata, error) {
	if v.err != nil {
		return Metadata{}, v.err
	}
	if v.total == 0 {
		return Metadata{}, fmt.Errorf("%w: header incomplete after %d bytes", ErrTruncated, v.n)
	}
	return v.md, nil
}
