package edge

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/inference/onnxmodel"
	"github.com/sentimentpro/sentiment/internal/httperr"
)

// The Open Inference Protocol (KServe V2) REST surface, with the binary
// tensor data extension. The model takes one BYTES input (the texts, any
// name, any shape) and returns three outputs: "label" (BYTES, the most
// probable label) and "score" (FP32, its probability), each with the
// input's shape, element by element, and "probabilities" (FP32, every
// label's, in the order of the model's labels), of the input's shape and
// one dimension more, the labels.

// inferHeaderLength is the binary extension's header: the length of the
// JSON part of a body that continues with tensor bytes.
const inferHeaderLength = "Inference-Header-Content-Length"

// supportedParameters answer a request that names another.
const supportedParameters = "binary_data_output (request), binary_data_size and content_type (input), binary_data (output)"

func (s *Server) serverMeta(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	b := appendField([]byte("{"), "name", "sentiment-edge", true)
	b = appendField(b, "version", Version, false)
	b = append(b, `,"extensions":["binary_tensor_data","model_configuration","model_repository","statistics"]}`...)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
	return nil
}

// servedModel checks the {name} and optional {version} path parameters
// against the models held, and returns the version to use: the model's
// stable version, or the held version the path names (the stable one or a
// rollout's candidate).
func (s *Server) servedModel(ctx *fasthttp.RequestCtx) (*Serving, error) {
	name, _ := ctx.UserValue("name").(string)
	version, _ := ctx.UserValue("version").(string)
	return s.model(name, version)
}

// model is the version a call names: the model's stable version, or with
// version the held version of that name.
func (s *Server) model(name, version string) (*Serving, error) {
	sl, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return sl.version(sl.current.Load(), version)
}

func (s *Server) modelMeta(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	sv, err := s.servedModel(ctx)
	if err != nil {
		return err
	}
	b := appendField([]byte("{"), "name", sv.Name, true)
	b = append(b, `,"versions":[`...)
	b = httperr.AppendJSONString(b, sv.Version)
	b = append(b, ']')
	b = appendField(b, "platform", sv.Predictor.Platform(), false)
	b = append(b, `,"inputs":[{"name":"text","datatype":"BYTES","shape":[-1]}]`...)
	b = append(b, `,"outputs":[{"name":"label","datatype":"BYTES","shape":[-1]},{"name":"score","datatype":"FP32","shape":[-1]}`...)
	b = append(b, `,{"name":"probabilities","datatype":"FP32","shape":[-1,`...)
	b = strconv.AppendInt(b, int64(len(sv.Predictor.Labels())), 10)
	b = append(b, `]}]`...)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

// modelConfig answers Triton's model configuration extension: the
// model's configuration as Triton's JSON form of its ModelConfig message
// (model_config.proto: dims as numbers, BYTES as TYPE_STRING), which
// Triton's clients and perf_analyzer read beside the metadata.
// max_batch_size 0: the model takes tensors of any shape, and its first
// dimension is not a batch one Triton would add or strip.
func (s *Server) modelConfig(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	sv, err := s.servedModel(ctx)
	if err != nil {
		return err
	}
	b := appendField([]byte("{"), "name", sv.Name, true)
	b = appendField(b, "platform", sv.Predictor.Platform(), false)
	backend := ""
	if sv.Predictor.Platform() == onnxmodel.Platform {
		backend = "onnxruntime" // Triton's name for the backend of that platform
	}
	b = appendField(b, "backend", backend, false)
	b = append(b, `,"max_batch_size":0`...)
	b = append(b, `,"input":[{"name":"text","data_type":"TYPE_STRING","format":"FORMAT_NONE","dims":[-1]}]`...)
	b = append(b, `,"output":[{"name":"label","data_type":"TYPE_STRING","dims":[-1]},{"name":"score","data_type":"TYPE_FP32","dims":[-1]}`...)
	b = append(b, `,{"name":"probabilities","data_type":"TYPE_FP32","dims":[-1,`...)
	b = strconv.AppendInt(b, int64(len(sv.Predictor.Labels())), 10)
	b = append(b, `]}]`...)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

// modelReady answers {"name", "ready"}: 200 when ready and, as the
// protocol has it, a 4xx with "ready": false when the model is not (an
// unknown model or version stays a 404 error).
func (s *Server) modelReady(ctx *fasthttp.RequestCtx, _ *Serving, id string) error {
	_, err := s.servedModel(ctx)
	if code, _ := httperr.From(err); code == fasthttp.StatusNotFound {
		return err
	}
	name, _ := ctx.UserValue("name").(string)
	return writeHealth(ctx, `{"name":`+httperr.Quote(name)+`,"ready":`, err, id)
}

// writeHealth answers a protocol health route: prefix and true with 200,
// or prefix and false with 400 and the reason in "error".
func writeHealth(ctx *fasthttp.RequestCtx, prefix string, err error, id string) error {
	ctx.SetContentType("application/json")
	if err == nil {
		ctx.SetBodyString(prefix + "true}\n")
		return nil
	}
	_, msg := httperr.From(err)
	ctx.SetStatusCode(fasthttp.StatusBadRequest)
	b := append([]byte(prefix), `false,"error":`...)
	b = httperr.AppendJSONString(b, msg)
	b = appendField(b, "request_id", id, false)
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

// The outputs, by their index in oipOutputs.
const (
	outLabel = iota
	outScore
	outProbabilities
)

var oipOutputs = []string{"label", "score", "probabilities"}

// oipOutput is one requested output: outLabel, outScore or
// outProbabilities.
type oipOutput struct {
	which  int
	binary bool
}

// oipRequest is what infer needs from a request.
type oipRequest struct {
	id      []byte
	hasID   bool
	texts   [][]byte
	shape   []int64
	outputs []oipOutput
}

// parseInfer reads an infer request: JSON, or JSON followed by tensor
// bytes when the binary extension's header gives the JSON's length.
// Its slices are filled in place: req comes from a pool.
func (s *Server) parseInfer(ctx *fasthttp.RequestCtx, p *fastjson.Parser, req *oipRequest) error {
	body, tail := ctx.PostBody(), []byte(nil)
	if h := ctx.Request.Header.Peek(inferHeaderLength); h != nil {
		n, err := strconv.Atoi(string(h))
		if err != nil || n < 0 || n > len(body) {
			return httperr.New(fasthttp.StatusBadRequest, "%s is %q: want the JSON part's length, 0 to %d", inferHeaderLength, h, len(body))
		}
		body, tail = body[:n], body[n:]
	}
	obj, err := parseObject(p, body, `{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["..."]}]}`)
	if err != nil {
		return err
	}
	var inputs, outputs []*fastjson.Value
	binaryOutput := false
	ferr := eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
		switch string(key) {
		case "id":
			if req.id, ferr = val.StringBytes(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"id" must be a string`)
			}
			req.hasID = true
		case "inputs":
			if inputs, ferr = val.Array(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"inputs" must be an array`)
			}
		case "outputs":
			if outputs, ferr = val.Array(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"outputs" must be an array`)
			}
		case "parameters":
			binaryOutput, ferr = requestParameters(val)
		default:
			ferr = httperr.New(fasthttp.StatusBadRequest, "unknown field %q", key)
		}
		return ferr
	})
	if ferr != nil {
		return ferr
	}
	if len(inputs) != 1 {
		return httperr.New(fasthttp.StatusBadRequest, "expected exactly 1 input (BYTES texts), got %d", len(inputs))
	}
	if req.texts, req.shape, tail, err = s.parseInput(inputs[0], tail, req.texts[:0], req.shape[:0]); err != nil {
		return err
	}
	if len(tail) > 0 {
		return httperr.New(fasthttp.StatusBadRequest, "%d bytes of binary data beyond what the inputs' binary_data_size accounts for", len(tail))
	}
	req.outputs, err = parseOutputs(outputs, binaryOutput, req.outputs[:0])
	return err
}

// requestParameters reads the request's parameters: binary_data_output.
func requestParameters(val *fastjson.Value) (binaryOutput bool, err error) {
	obj, err := val.Object()
	if err != nil {
		return false, httperr.New(fasthttp.StatusBadRequest, `"parameters" must be an object`)
	}
	err = eachField(obj, func(key []byte, v *fastjson.Value) (err error) {
		if string(key) != "binary_data_output" {
			err = unsupportedParameter("", key)
			return
		}
		if binaryOutput, err = v.Bool(); err != nil {
			err = httperr.New(fasthttp.StatusBadRequest, `parameter "binary_data_output" must be true or false`)
		}
		return err
	})
	return binaryOutput, err
}

func unsupportedParameter(where string, key []byte) error {
	return httperr.New(fasthttp.StatusBadRequest, "%sparameter %q is not supported (supported: %s)", where, key, supportedParameters)
}

// parseOutputs reads the requested outputs (default: label then score),
// each in JSON or, with binary_data (default binaryOutput), as bytes.
func parseOutputs(outputs []*fastjson.Value, binaryOutput bool, out []oipOutput) ([]oipOutput, error) {
	if len(outputs) == 0 {
		return append(out, oipOutput{outLabel, binaryOutput}, oipOutput{outScore, binaryOutput}, oipOutput{outProbabilities, binaryOutput}), nil
	}
	for i, o := range outputs {
		obj, err := o.Object()
		if err != nil {
			return nil, httperr.New(fasthttp.StatusBadRequest, "outputs[%d] must be an object", i)
		}
		req := oipOutput{which: -1, binary: binaryOutput}
		ferr := eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
			switch string(key) {
			case "name":
				req.which = slices.Index(oipOutputs, string(val.GetStringBytes()))
				if req.which < 0 {
					ferr = httperr.New(fasthttp.StatusBadRequest, "outputs[%d]: unknown output %s (want label, score or probabilities)", i, val)
				}
			case "parameters":
				req.binary, ferr = outputParameters(val, i, binaryOutput)
			default:
				ferr = httperr.New(fasthttp.StatusBadRequest, "outputs[%d]: unknown field %q", i, key)
			}
			return ferr
		})
		if ferr != nil {
			return nil, ferr
		}
		if req.which < 0 {
			return nil, httperr.New(fasthttp.StatusBadRequest, "outputs[%d] needs a name", i)
		}
		for _, earlier := range out {
			if earlier.which == req.which {
				return nil, httperr.New(fasthttp.StatusBadRequest, "outputs[%d]: output %s is requested twice", i, o.Get("name"))
			}
		}
		out = append(out, req)
	}
	return out, nil
}

func outputParameters(val *fastjson.Value, i int, binary bool) (bool, error) {
	obj, err := val.Object()
	if err != nil {
		return false, httperr.New(fasthttp.StatusBadRequest, "outputs[%d].parameters must be an object", i)
	}
	err = eachField(obj, func(key []byte, v *fastjson.Value) (err error) {
		if string(key) != "binary_data" {
			err = unsupportedParameter("outputs["+strconv.Itoa(i)+"]: ", key)
			return
		}
		if binary, err = v.Bool(); err != nil {
			err = httperr.New(fasthttp.StatusBadRequest, `outputs[%d]: parameter "binary_data" must be true or false`, i)
		}
		return err
	})
	return binary, err
}

// parseInput reads the one tensor: name, datatype BYTES, shape, and data
// in JSON (flat or nested row-major) or, with binary_data_size, from the
// front of tail. It returns the texts, the shape and what is left of tail.
// texts and shape are appended to.
func (s *Server) parseInput(in *fastjson.Value, tail []byte, texts [][]byte, shape []int64) ([][]byte, []int64, []byte, error) {
	obj, err := in.Object()
	if err != nil {
		return nil, nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] must be an object")
	}
	var shapeVal []*fastjson.Value
	var data *fastjson.Value
	binarySize := int64(-1)
	hasName, hasType := false, false
	ferr := eachField(obj, func(key []byte, val *fastjson.Value) (ferr error) {
		switch string(key) {
		case "name":
			hasName = val.Type() == fastjson.TypeString
		case "datatype":
			hasType = true
			if dt, _ := val.StringBytes(); string(dt) != "BYTES" {
				ferr = httperr.New(fasthttp.StatusBadRequest, `inputs[0].datatype must be "BYTES" (texts), got %s`, val)
			}
		case "shape":
			if shapeVal, ferr = val.Array(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, "inputs[0].shape must be an array of integers")
			}
		case "data":
			data = val
		case "parameters":
			binarySize, ferr = inputParameters(val)
		default:
			ferr = httperr.New(fasthttp.StatusBadRequest, "inputs[0]: unknown field %q", key)
		}
		return ferr
	})
	if ferr != nil {
		return nil, nil, nil, ferr
	}
	if !hasName || !hasType || shapeVal == nil || (data == nil) == (binarySize < 0) {
		return nil, nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] needs name, datatype, shape, and either data or a binary_data_size parameter")
	}
	want := 1
	for i, d := range shapeVal {
		n, err := d.Int()
		if err != nil || n < 0 {
			return nil, nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0].shape[%d] must be a non-negative integer", i)
		}
		// Each factor is checked before it multiplies: a product of
		// huge dimensions could wrap around to a small count.
		if n > s.cfg.MaxBatch || want*n > s.cfg.MaxBatch {
			return nil, nil, nil, httperr.New(fasthttp.StatusRequestEntityTooLarge, "at most %d texts per request", s.cfg.MaxBatch)
		}
		shape, want = append(shape, int64(n)), want*n
	}
	if data != nil {
		err = s.flatten(data, &texts, 0)
	} else {
		texts, tail, err = s.binaryTexts(tail, binarySize, texts)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if len(texts) != want {
		return nil, nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] has %d elements, its shape says %d", len(texts), want)
	}
	if len(texts) == 0 {
		return nil, nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] holds no text")
	}
	for i, t := range texts {
		if err := s.checkText(t, "inputs[0].data["+strconv.Itoa(i)+"]"); err != nil {
			return nil, nil, nil, err
		}
	}
	return texts, shape, tail, nil
}

// inputParameters reads an input's parameters: binary_data_size (-1 when
// absent) and content_type, which must name text.
func inputParameters(val *fastjson.Value) (binarySize int64, err error) {
	binarySize = -1
	obj, err := val.Object()
	if err != nil {
		return -1, httperr.New(fasthttp.StatusBadRequest, "inputs[0].parameters must be an object")
	}
	err = eachField(obj, func(key []byte, v *fastjson.Value) (err error) {
		switch string(key) {
		case "binary_data_size":
			if binarySize, err = v.Int64(); err != nil || binarySize < 0 {
				err = httperr.New(fasthttp.StatusBadRequest, `inputs[0]: parameter "binary_data_size" must be a non-negative integer`)
			}
		case "content_type":
			if ct := string(v.GetStringBytes()); ct != "str" && ct != "bytes" {
				err = httperr.New(fasthttp.StatusBadRequest, `inputs[0]: parameter "content_type" must be "str" (texts), got %s`, v)
			}
		default:
			err = unsupportedParameter("inputs[0]: ", key)
		}
		return err
	})
	return binarySize, err
}

// binaryTexts takes size bytes from the front of tail and reads them as
// BYTES elements: a 4-byte little-endian length, then that many bytes.
func (s *Server) binaryTexts(tail []byte, size int64, texts [][]byte) ([][]byte, []byte, error) {
	if size > int64(len(tail)) {
		return nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0]: binary_data_size is %d but %d bytes of binary data follow the JSON (is %s set?)", size, len(tail), inferHeaderLength)
	}
	data, rest := tail[:size], tail[size:]
	for len(data) > 0 {
		if len(data) < 4 {
			return nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0]: binary data ends inside an element's 4-byte length")
		}
		n := binary.LittleEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return nil, nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0]: an element of %d bytes runs past the binary data", n)
		}
		if len(texts) >= s.cfg.MaxBatch {
			return nil, nil, httperr.New(fasthttp.StatusRequestEntityTooLarge, "at most %d texts per request", s.cfg.MaxBatch)
		}
		texts = append(texts, data[4:4+n])
		data = data[4+n:]
	}
	return texts, rest, nil
}

func (s *Server) flatten(v *fastjson.Value, out *[][]byte, depth int) error {
	switch v.Type() {
	case fastjson.TypeString:
		if len(*out) >= s.cfg.MaxBatch {
			return httperr.New(fasthttp.StatusRequestEntityTooLarge, "at most %d texts per request", s.cfg.MaxBatch)
		}
		b, _ := v.StringBytes()
		*out = append(*out, b)
		return nil
	case fastjson.TypeArray:
		if depth > 8 {
			return httperr.New(fasthttp.StatusBadRequest, "inputs[0].data is nested too deeply")
		}
		items, _ := v.Array()
		for _, item := range items {
			if err := s.flatten(item, out, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return httperr.New(fasthttp.StatusBadRequest, "inputs[0].data must hold strings (BYTES), found %s", v.Type())
}

// inferScratch is what one infer call works in; pooled, so a call
// allocates next to nothing.
type inferScratch struct {
	req   oipRequest
	out   []byte // the JSON part of the answer
	blobs []byte // the binary part
}

var scratches = sync.Pool{New: func() any { return new(inferScratch) }}

func (s *Server) infer(ctx *fasthttp.RequestCtx, inf *Inference, _ string) error {
	// The path first: a model or version this edge does not hold is a 404
	// whatever the body.
	if _, err := s.servedModel(ctx); err != nil {
		return err
	}
	inf.Model, _ = ctx.UserValue("name").(string)
	inf.Version, _ = ctx.UserValue("version").(string)
	p := parsers.Get()
	defer parsers.Put(p)
	sc := scratches.Get().(*inferScratch)
	defer func() {
		clear(sc.req.texts) // no text outlives its request
		sc.req = oipRequest{texts: sc.req.texts[:0], shape: sc.req.shape[:0], outputs: sc.req.outputs[:0]}
		scratches.Put(sc)
	}()
	req := &sc.req
	if err := s.parseInfer(ctx, p, req); err != nil {
		return err
	}
	inf.Texts = append(inf.Texts, req.texts...)
	if err := s.Infer(inf); err != nil {
		return err
	}
	b := appendField(append(sc.out[:0], '{'), "model_name", inf.Serving.Name, true)
	b = appendField(b, "model_version", inf.Serving.Version, false)
	if req.hasID {
		b = appendField(b, "id", b2s(req.id), false)
	}
	b = append(b, `,"outputs":[`...)
	blobs := sc.blobs[:0]
	for i, o := range req.outputs {
		if i > 0 {
			b = append(b, ',')
		}
		b, blobs = appendOutput(b, blobs, o, req.shape, inf)
	}
	b = append(b, ']', '}')
	sc.out, sc.blobs = b, blobs
	if len(blobs) == 0 {
		ctx.SetContentType("application/json")
		ctx.SetBody(append(b, '\n')) // SetBody copies: the scratch can go back
		return nil
	}
	ctx.Response.Header.Set(inferHeaderLength, strconv.Itoa(len(b)))
	ctx.SetContentType("application/octet-stream")
	ctx.SetBody(b)
	ctx.Response.AppendBody(blobs)
	return nil
}

// appendOutput writes one output tensor to the JSON in b, or its bytes to
// blobs with binary_data_size in the JSON. shape is the input's.
func appendOutput(b, blobs []byte, o oipOutput, shape []int64, inf *Inference) ([]byte, []byte) {
	datatype := "FP32"
	if o.which == outLabel {
		datatype = "BYTES"
	}
	b = appendField(append(b, '{'), "name", oipOutputs[o.which], true)
	b = appendField(b, "datatype", datatype, false)
	b = append(b, `,"shape":[`...)
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	if o.which == outProbabilities {
		if len(shape) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(len(inf.Labels)), 10)
	}
	b = append(b, ']')
	if o.binary {
		start := len(blobs)
		for i, best := range inf.Best {
			switch o.which {
			case outLabel:
				blobs = binary.LittleEndian.AppendUint32(blobs, uint32(len(inf.Labels[best])))
				blobs = append(blobs, inf.Labels[best]...)
			case outScore:
				blobs = binary.LittleEndian.AppendUint32(blobs, math.Float32bits(inf.Row(i)[best]))
			default:
				for _, p := range inf.Row(i) {
					blobs = binary.LittleEndian.AppendUint32(blobs, math.Float32bits(p))
				}
			}
		}
		b = append(b, `,"parameters":{"binary_data_size":`...)
		b = strconv.AppendInt(b, int64(len(blobs)-start), 10)
		return append(b, "}}"...), blobs
	}
	b = append(b, `,"data":[`...)
	for i, best := range inf.Best {
		if i > 0 {
			b = append(b, ',')
		}
		switch o.which {
		case outLabel:
			b = httperr.AppendJSONString(b, inf.Labels[best])
		case outScore:
			b = strconv.AppendFloat(b, float64(inf.Row(i)[best]), 'g', -1, 32)
		default:
			for j, p := range inf.Row(i) {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(p), 'g', -1, 32)
			}
		}
	}
	return append(b, "]}"...), blobs
}
