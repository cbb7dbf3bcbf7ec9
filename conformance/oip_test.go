package conformance

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sentimentpro/sentiment/internal/testenv"
)

// The model under test: one BYTES input, outputs "label" (BYTES) and
// "score" (FP32) of the input's shape, and "probabilities" (FP32) of the
// input's shape and one more dimension, the labels.
const modelName = "sentiment"

// TestOpenInferenceProtocol makes the calls KServe's InferenceRESTClient
// and Triton's tritonclient.http make, against an edge and through a geo
// router in front of it, and decodes every answer the way they do.
func TestOpenInferenceProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edge and geo binaries")
	}
	edge := testenv.StartEdge(t, testenv.Edge{Name: "edge", Model: modelName}).Addr
	geo := testenv.StartGeo(t, testenv.Geo{Static: "us-east=" + edge, Default: "us-east", WaitReady: true, Args: []string{"-max-conns-per-ip", "256"}}).Addr
	for name, base := range map[string]string{"edge": "http://" + edge, "through the geo router": "http://" + geo} {
		t.Run(name, func(t *testing.T) {
			c := client{base: base, t: t}
			t.Run("health", c.health)
			t.Run("metadata", c.metadata)
			t.Run("infer JSON (KServe)", c.inferJSON)
			t.Run("infer JSON with binary outputs by default (Triton)", c.inferTritonDefault)
			t.Run("infer binary input, mixed outputs (Triton)", c.inferBinary)
			for _, coding := range []string{"gzip", "deflate"} {
				// tritonclient.http's request_compression_algorithm.
				zc := c
				zc.coding = coding
				t.Run("infer binary input, "+coding+" request (Triton)", zc.inferBinary)
				t.Run("infer JSON, "+coding+" request (Triton)", zc.inferTritonDefault)
			}
			t.Run("errors", c.errors)
			t.Run("HEAD answers like GET (RFC 9110)", c.head)
		})
	}
}

type client struct {
	base   string
	t      *testing.T
	coding string // the requests' Content-Encoding: "", gzip or deflate
}

// get is a GET whose JSON answer is decoded into a map.
func (c client) get(path string) (int, map[string]any) {
	c.t.Helper()
	resp, err := http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		c.t.Fatalf("GET %s: %d, body is not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// health: KServe's client reads json["live"] and json["ready"] and raises
// on a non-2xx status; Triton's checks for 200.
func (c client) health(t *testing.T) {
	for path, key := range map[string]string{"/v2/health/live": "live", "/v2/health/ready": "ready", "/v2/models/" + modelName + "/ready": "ready"} {
		code, body := c.get(path)
		if code != 200 || body[key] != true {
			t.Errorf("GET %s: %d %v, want 200 with %q: true", path, code, body, key)
		}
	}
	if _, body := c.get("/v2/models/" + modelName + "/ready"); body["name"] != modelName {
		t.Errorf("model ready names %v, want %q", body["name"], modelName)
	}
}

// metadata: server metadata lists the extensions; model metadata the
// tensors.
func (c client) metadata(t *testing.T) {
	code, server := c.get("/v2")
	exts, _ := server["extensions"].([]any)
	if code != 200 || server["name"] == nil || server["version"] == nil || !contains(exts, "binary_tensor_data") {
		t.Errorf("server metadata: %d %v", code, server)
	}
	code, m := c.get("/v2/models/" + modelName)
	versions, _ := m["versions"].([]any)
	inputs, _ := m["inputs"].([]any)
	outputs, _ := m["outputs"].([]any)
	if code != 200 || m["name"] != modelName || m["platform"] == nil || len(versions) == 0 || len(inputs) != 1 || len(outputs) != 3 {
		t.Fatalf("model metadata: %d %v", code, m)
	}
	in := inputs[0].(map[string]any)
	if in["datatype"] != "BYTES" || in["name"] == nil || in["shape"] == nil {
		t.Errorf("model input: %v", in)
	}
	// Triton's model configuration extension, as tritonclient's
	// get_model_config and perf_analyzer read it: the tensors of the
	// metadata again, with Triton's type names and dims as numbers.
	if !contains(exts, "model_configuration") {
		t.Errorf("server metadata lists %v, not model_configuration", exts)
	}
	tritonType := map[string]string{"BYTES": "TYPE_STRING", "FP32": "TYPE_FP32"}
	for _, path := range []string{"/v2/models/" + modelName + "/config", "/v2/models/" + modelName + "/versions/" + versions[0].(string) + "/config"} {
		code, config := c.get(path)
		if _, ok := config["max_batch_size"].(float64); code != 200 || config["name"] != modelName || !ok {
			t.Errorf("GET %s: %d %v", path, code, config)
			continue
		}
		for key, tensors := range map[string][]any{"input": inputs, "output": outputs} {
			listed, _ := config[key].([]any)
			if len(listed) != len(tensors) {
				t.Errorf("GET %s: %s %v, metadata %v", path, key, listed, tensors)
				continue
			}
			for i, tn := range tensors {
				want, got := tn.(map[string]any), listed[i].(map[string]any)
				dims, _ := got["dims"].([]any)
				if got["name"] != want["name"] || got["data_type"] != tritonType[want["datatype"].(string)] || len(dims) == 0 {
					t.Errorf("GET %s: %s %v against the metadata's %v", path, key, got, want)
				}
				for _, d := range dims {
					if _, ok := d.(float64); !ok {
						t.Errorf("GET %s: %s dims %v are not numbers", path, key, dims)
					}
				}
			}
		}
	}
}

// tensor is a decoded output.
type tensor struct {
	shape  []int64
	labels []string
	scores []float32
}

// infer posts a request (its JSON, then binary data if any) and decodes
// the answer as the clients do: the JSON part is the first
// Inference-Header-Content-Length bytes (all of the body without it), and
// an output with a binary_data_size parameter takes that many bytes from
// what follows, in output order.
func (c client) infer(t *testing.T, request map[string]any, binaryData []byte) (map[string]any, map[string]tensor) {
	t.Helper()
	head, err := json.Marshal(request)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", c.base+"/v2/models/"+modelName+"/infer", bytes.NewReader(c.compress(t, append(head, binaryData...))))
	req.Header.Set("Content-Type", "application/json")
	if c.coding != "" {
		req.Header.Set("Content-Encoding", c.coding)
	}
	if binaryData != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(head)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("infer: %d %s", resp.StatusCode, body)
	}
	jsonLen := len(body)
	if h := resp.Header.Get("Inference-Header-Content-Length"); h != "" {
		if jsonLen, err = strconv.Atoi(h); err != nil || jsonLen > len(body) {
			t.Fatalf("Inference-Header-Content-Length %q for a %d-byte body", h, len(body))
		}
	}
	var out map[string]any
	if err := json.Unmarshal(body[:jsonLen], &out); err != nil {
		t.Fatalf("the JSON part does not decode: %v: %q", err, body[:jsonLen])
	}
	rest := body[jsonLen:]
	tensors := map[string]tensor{}
	outputs, _ := out["outputs"].([]any)
	for _, o := range outputs {
		o := o.(map[string]any)
		name, _ := o["name"].(string)
		var tn tensor
		for _, d := range o["shape"].([]any) {
			tn.shape = append(tn.shape, int64(d.(float64)))
		}
		params, _ := o["parameters"].(map[string]any)
		if size, ok := params["binary_data_size"].(float64); ok {
			if int(size) > len(rest) {
				t.Fatalf("output %s: binary_data_size %v, %d bytes left", name, size, len(rest))
			}
			tn.decodeBinary(t, o["datatype"].(string), rest[:int(size)])
			rest = rest[int(size):]
		} else {
			tn.decodeJSON(t, o["datatype"].(string), o["data"])
		}
		if n := elements(tn.shape); n != len(tn.labels)+len(tn.scores) {
			t.Errorf("output %s: shape %v holds %d elements, data %d", name, tn.shape, n, len(tn.labels)+len(tn.scores))
		}
		tensors[name] = tn
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the last binary output", len(rest))
	}
	return out, tensors
}

// compress encodes a request body as Triton's client does: gzip, or
// deflate in zlib's wrapping (Python's zlib.compress). The
// Inference-Header-Content-Length stays the uncompressed JSON's.
func (c client) compress(t *testing.T, body []byte) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	switch c.coding {
	case "":
		return body
	case "gzip":
		w = gzip.NewWriter(&b)
	case "deflate":
		w = zlib.NewWriter(&b)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (tn *tensor) decodeBinary(t *testing.T, datatype string, b []byte) {
	switch datatype {
	case "BYTES":
		for len(b) > 0 {
			if len(b) < 4 {
				t.Fatalf("BYTES element length cut short")
			}
			n := binary.LittleEndian.Uint32(b)
			if int(n) > len(b)-4 {
				t.Fatalf("BYTES element of %d bytes past the end", n)
			}
			tn.labels = append(tn.labels, string(b[4:4+n]))
			b = b[4+n:]
		}
	case "FP32":
		if len(b)%4 != 0 {
			t.Fatalf("FP32 data of %d bytes", len(b))
		}
		for i := 0; i < len(b); i += 4 {
			tn.scores = append(tn.scores, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
		}
	default:
		t.Fatalf("unexpected datatype %s", datatype)
	}
}

// decodeJSON reads data flat or nested, row-major.
func (tn *tensor) decodeJSON(t *testing.T, datatype string, data any) {
	switch d := data.(type) {
	case []any:
		for _, x := range d {
			tn.decodeJSON(t, datatype, x)
		}
	case string:
		if datatype != "BYTES" {
			t.Fatalf("a string in a %s tensor", datatype)
		}
		tn.labels = append(tn.labels, d)
	case float64:
		if datatype != "FP32" {
			t.Fatalf("a number in a %s tensor", datatype)
		}
		tn.scores = append(tn.scores, float32(d))
	default:
		t.Fatalf("data %T", data)
	}
}

var texts = []string{"a wonderful, moving film", "a dull and boring mess"}

func checkPredictions(t *testing.T, out map[string]tensor, shape string) {
	t.Helper()
	label, score := out["label"], out["score"]
	if fmt.Sprint(label.shape) != shape || fmt.Sprint(score.shape) != shape {
		t.Errorf("output shapes %v and %v, want the input's %s", label.shape, score.shape, shape)
	}
	if fmt.Sprint(label.labels) != "[positive negative]" {
		t.Errorf("labels %v", label.labels)
	}
	for _, s := range score.scores {
		if s < 0.5 || s > 1 {
			t.Errorf("score %v outside [0.5, 1]", s)
		}
	}
}

// inferJSON: KServe's InferRequest.to_rest() for a BYTES input, nested
// data in a [2,1] shape, an id, outputs in JSON.
func (c client) inferJSON(t *testing.T) {
	out, tensors := c.infer(t, map[string]any{
		"id": "kserve-1",
		"inputs": []any{map[string]any{"name": "text", "shape": []int{2, 1}, "datatype": "BYTES",
			"data": [][]string{{texts[0]}, {texts[1]}}, "parameters": map[string]any{"content_type": "str"}}},
	}, nil)
	if out["id"] != "kserve-1" || out["model_name"] != modelName || out["model_version"] == nil {
		t.Errorf("response %v", out)
	}
	checkPredictions(t, tensors, "[2 1]")
}

// inferTritonDefault: tritonclient.http with no outputs named asks for
// every output in binary (parameters.binary_data_output).
func (c client) inferTritonDefault(t *testing.T) {
	_, tensors := c.infer(t, map[string]any{
		"inputs":     []any{map[string]any{"name": "text", "shape": []int{2}, "datatype": "BYTES", "data": texts}},
		"parameters": map[string]any{"binary_data_output": true},
	}, nil)
	checkPredictions(t, tensors, "[2]")
}

// inferBinary: tritonclient.http's set_data_from_numpy(binary_data=True)
// for BYTES: 4-byte little-endian lengths and the bytes after the JSON;
// one output in binary, the other in JSON.
func (c client) inferBinary(t *testing.T) {
	var data []byte
	for _, s := range texts {
		data = binary.LittleEndian.AppendUint32(data, uint32(len(s)))
		data = append(data, s...)
	}
	_, tensors := c.infer(t, map[string]any{
		"id": "triton-7",
		"inputs": []any{map[string]any{"name": "text", "shape": []int{1, 2}, "datatype": "BYTES",
			"parameters": map[string]any{"binary_data_size": len(data)}}},
		"outputs": []any{
			map[string]any{"name": "score", "parameters": map[string]any{"binary_data": true}},
			map[string]any{"name": "label", "parameters": map[string]any{"binary_data": false}},
		},
	}, data)
	checkPredictions(t, tensors, "[1 2]")
}

// errors: answers are {"error": "..."} with Content-Type application/json
// (KServe's client shows the error only then).
func (c client) errors(t *testing.T) {
	for name, body := range map[string]string{
		"no datatype":           `{"inputs":[{"name":"text","shape":[1],"data":["hi"]}]}`,
		"unsupported parameter": `{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["hi"]}],"parameters":{"sequence_id":3}}`,
		"shape mismatch":        `{"inputs":[{"name":"text","shape":[3],"datatype":"BYTES","data":["hi"]}]}`,
		"not JSON":              `{"inputs":`,
	} {
		resp, err := http.Post(c.base+"/v2/models/"+modelName+"/infer", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		decodeErr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		msg, _ := e["error"].(string)
		if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" || decodeErr != nil || msg == "" {
			t.Errorf("%s: %d %q %v %v", name, resp.StatusCode, resp.Header.Get("Content-Type"), e, decodeErr)
		}
	}
}

// head: RFC 9110 §9.1 has every general-purpose server answer HEAD
// wherever it answers GET; §9.3.2 has the answer be GET's without the
// content, and §8.6 a Content-Length, if sent, be the length GET's
// content has. §15.5.6 has a 405 list the allowed methods in Allow.
func (c client) head(t *testing.T) {
	id := []string{"conformance-head-0001"} // the same id makes error bodies the same length
	for _, path := range []string{"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/" + modelName,
		"/v2/models/" + modelName + "/ready", "/v2/models/no-such-model", "/health/live"} {
		var got [2]*http.Response
		var body [2][]byte
		for i, method := range []string{"GET", "HEAD"} {
			req, err := http.NewRequest(method, c.base+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header["X-Request-Id"] = id
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			body[i], err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			got[i] = resp
		}
		get, head := got[0], got[1]
		if head.StatusCode != get.StatusCode || len(body[1]) != 0 ||
			head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q with %d bytes; GET: %d %q", path, head.StatusCode,
				head.Header.Get("Content-Type"), len(body[1]), get.StatusCode, get.Header.Get("Content-Type"))
		}
		if head.ContentLength >= 0 && head.ContentLength != int64(len(body[0])) {
			t.Errorf("HEAD %s: Content-Length %d, GET's content has %d bytes", path, head.ContentLength, len(body[0]))
		}
	}
	req, err := http.NewRequest("DELETE", c.base+"/v2/health/ready", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	allow := strings.Split(strings.ReplaceAll(resp.Header.Get("Allow"), " ", ""), ",")
	if resp.StatusCode != 405 || !slices.Contains(allow, "GET") || !slices.Contains(allow, "HEAD") {
		t.Errorf("DELETE /v2/health/ready: %d, Allow %q; want 405 allowing GET and HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func elements(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}

func contains(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
