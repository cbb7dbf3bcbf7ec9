package bundle

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// Graph is what the registry and the edge need of an ONNX model before
// they run it: its inputs and outputs, and the operator set it targets.
// It is read from the ModelProto's protobuf as it streams past, without
// ONNX Runtime and without holding the weights.
type Graph struct {
	IRVersion int64
	Opset     int64 // of the default ("ai.onnx") domain
	Inputs    []Tensor
	Outputs   []Tensor
}

// Tensor is a graph input or output.
type Tensor struct {
	Name string
	// Type is the ONNX element type (1 float, 7 int64, ...; TensorProto.DataType).
	Type int32
	// Shape has one entry per dimension: its size, or -1 for a named or
	// unknown one (e.g. "batch"). Nil if the graph does not say.
	Shape []int64
}

// ONNX element types (onnx.proto, TensorProto.DataType).
const (
	TypeFloat = 1
	TypeInt64 = 7
)

// Field numbers in onnx.proto.
const (
	modelIRVersion   = 1
	modelGraph       = 7
	modelOpsetImport = 8

	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	tensorProtoName = 8

	valueInfoName = 1
	valueInfoType = 2

	typeTensorType   = 1
	tensorElemType   = 1
	tensorShape      = 2
	shapeDim         = 1
	dimValue         = 1
	opsetDomain      = 1
	opsetVersion     = 2
	maxSmallMessage  = 1 << 20 // a ValueInfoProto or opset entry larger than this is not a real one
	maxInitializerID = 1 << 16 // longest initializer name read
)

var errBadONNX = errors.New("not a valid ONNX model")

// ReadGraph reads an ONNX ModelProto of n bytes from r. Initializers that
// an old exporter also listed as graph inputs are not inputs.
func ReadGraph(r io.Reader, n int64) (Graph, error) {
	p := &protoReader{r: bufio.NewReaderSize(r, 64<<10), left: n}
	var g Graph
	var initializers map[string]bool
	sawGraph := false
	for p.left > 0 {
		num, typ, err := p.tag()
		if err != nil {
			return Graph{}, err
		}
		switch {
		case num == modelIRVersion && typ == protowire.VarintType:
			v, err := p.varint()
			if err != nil {
				return Graph{}, err
			}
			g.IRVersion = int64(v)
		case num == modelOpsetImport && typ == protowire.BytesType:
			msg, err := p.smallMessage()
			if err != nil {
				return Graph{}, err
			}
			if domain, version := parseOpset(msg); domain == "" || domain == "ai.onnx" {
				g.Opset = version
			}
		case num == modelGraph && typ == protowire.BytesType:
			size, err := p.varint()
			if err != nil {
				return Graph{}, err
			}
			if size > uint64(p.left) {
				return Graph{}, fmt.Errorf("%w: graph runs past the end of the file", errBadONNX)
			}
			sub := &protoReader{r: p.r, left: int64(size)}
			if initializers, err = readGraph(sub, &g); err != nil {
				return Graph{}, err
			}
			p.left -= int64(size)
			sawGraph = true
		default:
			if err := p.skip(typ); err != nil {
				return Graph{}, err
			}
		}
	}
	if !sawGraph {
		return Graph{}, fmt.Errorf("%w: no graph", errBadONNX)
	}
	inputs := g.Inputs[:0]
	for _, in := range g.Inputs {
		if !initializers[in.Name] {
			inputs = append(inputs, in)
		}
	}
	g.Inputs = inputs
	return g, nil
}

func readGraph(p *protoReader, g *Graph) (initializers map[string]bool, err error) {
	initializers = map[string]bool{}
	for p.left > 0 {
		num, typ, err := p.tag()
		if err != nil {
			return nil, err
		}
		switch {
		case (num == graphInput || num == graphOutput) && typ == protowire.BytesType:
			msg, err := p.smallMessage()
			if err != nil {
				return nil, err
			}
			t, err := parseValueInfo(msg)
			if err != nil {
				return nil, err
			}
			if num == graphInput {
				g.Inputs = append(g.Inputs, t)
			} else {
				g.Outputs = append(g.Outputs, t)
			}
		case num == graphInitializer && typ == protowire.BytesType:
			name, err := p.initializerName()
			if err != nil {
				return nil, err
			}
			initializers[name] = true
		default:
			if err := p.skip(typ); err != nil {
				return nil, err
			}
		}
	}
	return initializers, nil
}

// protoReader walks protobuf fields of a message of known length from a
// stream.
type protoReader struct {
	r    *bufio.Reader
	left int64
}

func (p *protoReader) tag() (protowire.Number, protowire.Type, error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber {
		return 0, 0, fmt.Errorf("%w: field number %d", errBadONNX, num)
	}
	return num, typ, nil
}

func (p *protoReader) varint() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if p.left <= 0 {
			return 0, fmt.Errorf("%w: truncated", errBadONNX)
		}
		b, err := p.r.ReadByte()
		if err != nil {
			return 0, truncated(err)
		}
		p.left--
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: varint too long", errBadONNX)
}

// bytes reads a length-delimited field's length and then that many bytes,
// refusing more than limit.
func (p *protoReader) bytes(limit int64) ([]byte, error) {
	n, err := p.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(p.left) || n > uint64(limit) {
		return nil, fmt.Errorf("%w: a %d-byte field where at most %d fit", errBadONNX, n, min(p.left, limit))
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return nil, truncated(err)
	}
	p.left -= int64(n)
	return buf, nil
}

func (p *protoReader) smallMessage() ([]byte, error) { return p.bytes(maxSmallMessage) }

// skip passes over a field's value.
func (p *protoReader) skip(typ protowire.Type) error {
	var n int64
	switch typ {
	case protowire.VarintType:
		_, err := p.varint()
		return err
	case protowire.Fixed32Type:
		n = 4
	case protowire.Fixed64Type:
		n = 8
	case protowire.BytesType:
		size, err := p.varint()
		if err != nil {
			return err
		}
		if size > uint64(p.left) {
			return fmt.Errorf("%w: a field runs past the end of its message", errBadONNX)
		}
		n = int64(size)
	default:
		return fmt.Errorf("%w: wire type %d", errBadONNX, typ)
	}
	return p.discard(n)
}

func (p *protoReader) discard(n int64) error {
	if n > p.left {
		return fmt.Errorf("%w: a field runs past the end of its message", errBadONNX)
	}
	if _, err := p.r.Discard(int(n)); err != nil {
		return truncated(err)
	}
	p.left -= n
	return nil
}

// initializerName reads a TensorProto field, keeping only its name: the
// tensor's data streams past.
func (p *protoReader) initializerName() (string, error) {
	size, err := p.varint()
	if err != nil {
		return "", err
	}
	if size > uint64(p.left) {
		return "", fmt.Errorf("%w: initializer runs past the end of the graph", errBadONNX)
	}
	sub := &protoReader{r: p.r, left: int64(size)}
	p.left -= int64(size)
	name := ""
	for sub.left > 0 {
		num, typ, err := sub.tag()
		if err != nil {
			return "", err
		}
		if num == tensorProtoName && typ == protowire.BytesType {
			b, err := sub.bytes(maxInitializerID)
			if err != nil {
				return "", err
			}
			name = string(b)
			continue
		}
		if err := sub.skip(typ); err != nil {
			return "", err
		}
	}
	return name, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated", errBadONNX)
	}
	return err
}

// fields calls f for each field of an in-memory message, with its value
// as a varint or the bytes of a length-delimited field.
func fields(msg []byte, f func(num protowire.Number, v uint64, b []byte)) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return fmt.Errorf("%w: %v", errBadONNX, protowire.ParseError(n))
		}
		msg = msg[n:]
		var v uint64
		var b []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(msg)
		case protowire.BytesType:
			b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return fmt.Errorf("%w: %v", errBadONNX, protowire.ParseError(n))
		}
		msg = msg[n:]
		f(num, v, b)
	}
	return nil
}

func parseOpset(msg []byte) (domain string, version int64) {
	_ = fields(msg, func(num protowire.Number, v uint64, b []byte) {
		switch num {
		case opsetDomain:
			domain = string(b)
		case opsetVersion:
			version = int64(v)
		}
	})
	return domain, version
}

func parseValueInfo(msg []byte) (Tensor, error) {
	var t Tensor
	var typeMsg []byte
	err := fields(msg, func(num protowire.Number, _ uint64, b []byte) {
		switch num {
		case valueInfoName:
			t.Name = string(b)
		case valueInfoType:
			typeMsg = b
		}
	})
	if err != nil {
		return Tensor{}, err
	}
	var tensorMsg []byte
	if err := fields(typeMsg, func(num protowire.Number, _ uint64, b []byte) {
		if num == typeTensorType {
			tensorMsg = b
		}
	}); err != nil {
		return Tensor{}, err
	}
	var shapeMsg []byte
	hasShape := false
	if err := fields(tensorMsg, func(num protowire.Number, v uint64, b []byte) {
		switch num {
		case tensorElemType:
			t.Type = int32(v)
		case tensorShape:
			shapeMsg, hasShape = b, true
		}
	}); err != nil {
		return Tensor{}, err
	}
	if !hasShape {
		return t, nil
	}
	t.Shape = []int64{}
	err = fields(shapeMsg, func(num protowire.Number, _ uint64, dim []byte) {
		if num != shapeDim {
			return
		}
		size := int64(-1)
		_ = fields(dim, func(num protowire.Number, v uint64, _ []byte) {
			if num == dimValue {
				size = int64(v)
			}
		})
		t.Shape = append(t.Shape, size)
	})
	return t, err
}
