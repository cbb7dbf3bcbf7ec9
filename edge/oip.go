package edge

import (
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/sentimentpro/sentiment/internal/httperr"
)

// The Open Inference Protocol (KServe V2) REST surface. The model takes
// one BYTES input (the texts, any name, any shape) and returns two
// outputs: "label" (BYTES) and "score" (FP32), in the input's order.

func (s *Server) serverMeta(ctx *fasthttp.RequestCtx, _ *Serving, _ string) error {
	b := appendField([]byte("{"), "name", "sentiment-edge", true)
	b = appendField(b, "version", Version, false)
	b = append(b, `,"extensions":[]}`...)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
	return nil
}

// servedModel checks the {name} and optional {version} path parameters
// against the model being served.
func (s *Server) servedModel(ctx *fasthttp.RequestCtx, sv *Serving) error {
	name, _ := ctx.UserValue("name").(string)
	version, _ := ctx.UserValue("version").(string)
	if name != s.cfg.ModelName {
		return httperr.New(fasthttp.StatusNotFound, "model %q not found (this edge serves %q)", name, s.cfg.ModelName)
	}
	if sv == nil {
		return httperr.New(fasthttp.StatusServiceUnavailable, "model %q is not loaded yet", name)
	}
	if version != "" && version != sv.Version {
		return httperr.New(fasthttp.StatusNotFound, "version %q of model %q not found (serving %q)", version, name, sv.Version)
	}
	return nil
}

func (s *Server) modelMeta(ctx *fasthttp.RequestCtx, sv *Serving, _ string) error {
	if err := s.servedModel(ctx, sv); err != nil {
		return err
	}
	b := appendField([]byte("{"), "name", s.cfg.ModelName, true)
	b = append(b, `,"versions":[`...)
	b = httperr.AppendJSONString(b, sv.Version)
	b = append(b, ']')
	b = appendField(b, "platform", "sentiment-linear", false)
	b = append(b, `,"inputs":[{"name":"text","datatype":"BYTES","shape":[-1]}]`...)
	b = append(b, `,"outputs":[{"name":"label","datatype":"BYTES","shape":[-1]},{"name":"score","datatype":"FP32","shape":[-1]}]`...)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '}', '\n'))
	return nil
}

func (s *Server) modelReady(ctx *fasthttp.RequestCtx, sv *Serving, _ string) error {
	if err := s.servedModel(ctx, sv); err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"ready":true}` + "\n")
	return nil
}

// oipRequest is what infer needs from a request body.
type oipRequest struct {
	id        []byte
	hasID     bool
	texts     [][]byte
	wantLabel bool
	wantScore bool
}

func (s *Server) parseInfer(body []byte, p *fastjson.Parser) (oipRequest, error) {
	req := oipRequest{wantLabel: true, wantScore: true}
	obj, err := parseObject(p, body, `{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["..."]}]}`)
	if err != nil {
		return req, err
	}
	var inputs, outputs []*fastjson.Value
	var ferr error
	obj.Visit(func(key []byte, val *fastjson.Value) {
		if ferr != nil {
			return
		}
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
			if val.Type() != fastjson.TypeObject {
				ferr = httperr.New(fasthttp.StatusBadRequest, `"parameters" must be an object`)
			}
		default:
			ferr = httperr.New(fasthttp.StatusBadRequest, "unknown field %q", key)
		}
	})
	if ferr != nil {
		return req, ferr
	}
	if len(inputs) != 1 {
		return req, httperr.New(fasthttp.StatusBadRequest, "expected exactly 1 input (BYTES texts), got %d", len(inputs))
	}
	if req.texts, err = s.parseInput(inputs[0]); err != nil {
		return req, err
	}
	if len(outputs) > 0 {
		req.wantLabel, req.wantScore = false, false
		for i, o := range outputs {
			name := string(o.GetStringBytes("name"))
			switch name {
			case "label":
				req.wantLabel = true
			case "score":
				req.wantScore = true
			default:
				return req, httperr.New(fasthttp.StatusBadRequest, "outputs[%d]: unknown output %q (want label or score)", i, name)
			}
		}
	}
	return req, nil
}

// parseInput reads one tensor: name, datatype BYTES, shape, data (flat or
// nested row-major), parameters.
func (s *Server) parseInput(in *fastjson.Value) ([][]byte, error) {
	obj, err := in.Object()
	if err != nil {
		return nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] must be an object")
	}
	var shape []*fastjson.Value
	var data *fastjson.Value
	var ferr error
	hasName := false
	obj.Visit(func(key []byte, val *fastjson.Value) {
		if ferr != nil {
			return
		}
		switch string(key) {
		case "name":
			hasName = val.Type() == fastjson.TypeString
		case "datatype":
			if dt, _ := val.StringBytes(); string(dt) != "BYTES" {
				ferr = httperr.New(fasthttp.StatusBadRequest, `inputs[0].datatype must be "BYTES" (texts), got %s`, val)
			}
		case "shape":
			if shape, ferr = val.Array(); ferr != nil {
				ferr = httperr.New(fasthttp.StatusBadRequest, "inputs[0].shape must be an array of integers")
			}
		case "data":
			data = val
		case "parameters":
		default:
			ferr = httperr.New(fasthttp.StatusBadRequest, "inputs[0]: unknown field %q", key)
		}
	})
	if ferr != nil {
		return nil, ferr
	}
	if !hasName || shape == nil || data == nil {
		return nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] needs name, datatype, shape and data")
	}
	want := 1
	for i, d := range shape {
		n, err := d.Int()
		if err != nil || n < 0 {
			return nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0].shape[%d] must be a non-negative integer", i)
		}
		want *= n
		if want > s.cfg.MaxBatch {
			return nil, httperr.New(fasthttp.StatusRequestEntityTooLarge, "at most %d texts per request", s.cfg.MaxBatch)
		}
	}
	var texts [][]byte
	if err := s.flatten(data, &texts, 0); err != nil {
		return nil, err
	}
	if len(texts) != want {
		return nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] has %d elements, its shape says %d", len(texts), want)
	}
	if len(texts) == 0 {
		return nil, httperr.New(fasthttp.StatusBadRequest, "inputs[0] holds no text")
	}
	for i, t := range texts {
		if err := s.checkText(t, "inputs[0].data["+strconv.Itoa(i)+"]"); err != nil {
			return nil, err
		}
	}
	return texts, nil
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

func (s *Server) infer(ctx *fasthttp.RequestCtx, sv *Serving, _ string) error {
	if err := s.servedModel(ctx, sv); err != nil {
		return err
	}
	p := parsers.Get()
	defer parsers.Put(p)
	req, err := s.parseInfer(ctx.PostBody(), p)
	if err != nil {
		return err
	}
	labels := make([]string, len(req.texts))
	scores := make([]float32, len(req.texts))
	for i, t := range req.texts {
		pred := sv.Model.Predict(b2s(t))
		labels[i], scores[i] = pred.Label, pred.Score
		sv.count(pred.Index)
	}
	n := strconv.Itoa(len(req.texts))
	b := appendField([]byte("{"), "model_name", s.cfg.ModelName, true)
	b = appendField(b, "model_version", sv.Version, false)
	if req.hasID {
		b = appendField(b, "id", string(req.id), false)
	}
	b = append(b, `,"outputs":[`...)
	if req.wantLabel {
		b = append(b, `{"name":"label","datatype":"BYTES","shape":[`+n+`],"data":[`...)
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = httperr.AppendJSONString(b, l)
		}
		b = append(b, "]}"...)
	}
	if req.wantScore {
		if req.wantLabel {
			b = append(b, ',')
		}
		b = append(b, `{"name":"score","datatype":"FP32","shape":[`+n+`],"data":[`...)
		for i, sc := range scores {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(sc), 'g', -1, 32)
		}
		b = append(b, "]}"...)
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, ']', '}', '\n'))
	return nil
}
