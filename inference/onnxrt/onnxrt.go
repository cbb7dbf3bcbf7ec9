// Package onnxrt runs ONNX models through ONNX Runtime's C library, loaded
// at run time with purego: no cgo, and a binary that never loads an ONNX
// model does not need the library. It binds the few functions of the C API
// a text classifier needs: a session from the model's bytes, its inputs'
// and outputs' names, types and shapes, and Run with int64 inputs and
// float32 outputs.
//
// The C API is a table of function pointers (OrtApi) that only grows at
// its end, so a function's index is the same in every release that has
// it; the indexes below are those of onnxruntime_c_api.h. The library is
// fetched by scripts/onnxruntime.sh (ONNX Runtime 1.30.0, API version 24
// is what this package asks for).
package onnxrt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// apiVersion is the C API version asked for: the newest whose table this
// package's indexes were read from, which ONNX Runtime 1.30 serves.
const apiVersion = 24

// Indexes into the OrtApi table (onnxruntime_c_api.h, struct OrtApi).
const (
	idxGetErrorMessage                = 2
	idxCreateEnv                      = 3
	idxCreateSessionFromArray         = 8
	idxRun                            = 9
	idxCreateSessionOptions           = 10
	idxSetGraphOptimizationLevel      = 23
	idxSetIntraOpNumThreads           = 24
	idxSetInterOpNumThreads           = 25
	idxSessionGetInputCount           = 30
	idxSessionGetOutputCount          = 31
	idxSessionGetInputTypeInfo        = 33
	idxSessionGetOutputTypeInfo       = 34
	idxSessionGetInputName            = 36
	idxSessionGetOutputName           = 37
	idxCreateTensorWithDataAsOrtValue = 49
	idxGetTensorMutableData           = 51
	idxCastTypeInfoToTensorInfo       = 55
	idxGetTensorElementType           = 60
	idxGetDimensionsCount             = 61
	idxGetDimensions                  = 62
	idxGetTensorTypeAndShape          = 65
	idxCreateCpuMemoryInfo            = 69
	idxAllocatorFree                  = 76
	idxGetAllocatorWithDefaultOptions = 78
	idxReleaseEnv                     = 92
	idxReleaseStatus                  = 93
	idxReleaseMemoryInfo              = 94
	idxReleaseSession                 = 95
	idxReleaseValue                   = 96
	idxReleaseTypeInfo                = 98
	idxReleaseTensorTypeAndShapeInfo  = 99
	idxReleaseSessionOptions          = 100
	idxAddSessionConfigEntry          = 130
	idxGetBuildInfoString             = 254
)

// Element types (ONNXTensorElementDataType) this package reads and writes.
const (
	TypeFloat = 1
	TypeInt64 = 7
)

// api holds the bound functions of one loaded library.
type api struct {
	getErrorMessage   func(status uintptr) string
	releaseStatus     func(status uintptr)
	createEnv         func(level int32, logID string, out *uintptr) uintptr
	releaseEnv        func(env uintptr)
	createOptions     func(out *uintptr) uintptr
	setOptLevel       func(opts uintptr, level int32) uintptr
	setIntraThreads   func(opts uintptr, n int32) uintptr
	setInterThreads   func(opts uintptr, n int32) uintptr
	addConfigEntry    func(opts uintptr, key, value string) uintptr
	releaseOptions    func(opts uintptr)
	createSession     func(env uintptr, data unsafe.Pointer, size uintptr, opts uintptr, out *uintptr) uintptr
	releaseSession    func(session uintptr)
	inputCount        func(session uintptr, out *uintptr) uintptr
	outputCount       func(session uintptr, out *uintptr) uintptr
	inputName         func(session uintptr, i uintptr, alloc uintptr, out *unsafe.Pointer) uintptr
	outputName        func(session uintptr, i uintptr, alloc uintptr, out *unsafe.Pointer) uintptr
	inputTypeInfo     func(session uintptr, i uintptr, out *uintptr) uintptr
	outputTypeInfo    func(session uintptr, i uintptr, out *uintptr) uintptr
	castToTensorInfo  func(typeInfo uintptr, out *uintptr) uintptr
	releaseTypeInfo   func(typeInfo uintptr)
	elementType       func(info uintptr, out *int32) uintptr
	dimensionsCount   func(info uintptr, out *uintptr) uintptr
	dimensions        func(info uintptr, dims unsafe.Pointer, n uintptr) uintptr
	valueTypeAndShape func(value uintptr, out *uintptr) uintptr
	releaseShapeInfo  func(info uintptr)
	defaultAllocator  func(out *uintptr) uintptr
	allocatorFree     func(alloc uintptr, p unsafe.Pointer) uintptr
	cpuMemoryInfo     func(allocType int32, memType int32, out *uintptr) uintptr
	releaseMemoryInfo func(info uintptr)
	createTensor      func(info uintptr, data unsafe.Pointer, size uintptr, shape unsafe.Pointer, shapeLen uintptr, elemType int32, out *uintptr) uintptr
	tensorData        func(value uintptr, out *unsafe.Pointer) uintptr
	releaseValue      func(value uintptr)
	run               func(session uintptr, runOptions uintptr, inNames unsafe.Pointer, inputs unsafe.Pointer, nIn uintptr,
		outNames unsafe.Pointer, nOut uintptr, outputs unsafe.Pointer) uintptr
	buildInfo func() string
}

// Runtime is a loaded ONNX Runtime library and its environment; sessions
// share it. It lives as long as the process.
type Runtime struct {
	api     api
	env     uintptr
	mem     uintptr // CPU memory info for input tensors
	alloc   uintptr // the default allocator (names are returned in it)
	Version string  // the library's version, e.g. "1.30.0"
}

var (
	loadMu sync.Mutex
	loaded = map[string]*Runtime{}
)

// Open loads the library at path (once per path per process) and creates
// its environment.
func Open(path string) (*Runtime, error) {
	loadMu.Lock()
	defer loadMu.Unlock()
	if rt := loaded[path]; rt != nil {
		return rt, nil
	}
	rt, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot load ONNX Runtime from %q: %w", path, err)
	}
	loaded[path] = rt
	return rt, nil
}

func open(path string) (*Runtime, error) {
	lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, err
	}
	baseSym, err := purego.Dlsym(lib, "OrtGetApiBase")
	if err != nil {
		return nil, fmt.Errorf("not an ONNX Runtime library: %w", err)
	}
	var getAPIBase func() unsafe.Pointer
	purego.RegisterFunc(&getAPIBase, baseSym)
	base := getAPIBase()
	var getAPI func(version uint32) unsafe.Pointer
	var getVersion func() string
	purego.RegisterFunc(&getAPI, entry(base, 0))
	purego.RegisterFunc(&getVersion, entry(base, 1))
	rt := &Runtime{Version: getVersion()}
	table := getAPI(apiVersion)
	if table == nil {
		return nil, fmt.Errorf("ONNX Runtime %s does not serve C API version %d (1.30 or later does)", rt.Version, apiVersion)
	}
	rt.api = bind(table)
	if err := rt.status(rt.api.createEnv(3, "sentiment", &rt.env)); err != nil { // 3: errors only
		return nil, err
	}
	if err := rt.status(rt.api.cpuMemoryInfo(1, 0, &rt.mem)); err != nil { // arena allocator, default memory
		return nil, err
	}
	if err := rt.status(rt.api.defaultAllocator(&rt.alloc)); err != nil {
		return nil, err
	}
	return rt, nil
}

// entry is the i-th function pointer of a table of them.
func entry(table unsafe.Pointer, i int) uintptr {
	return *(*uintptr)(unsafe.Add(table, i*int(unsafe.Sizeof(uintptr(0)))))
}

func bind(t unsafe.Pointer) api {
	var a api
	fns := []struct {
		fn  any
		idx int
	}{
		{&a.getErrorMessage, idxGetErrorMessage}, {&a.releaseStatus, idxReleaseStatus},
		{&a.createEnv, idxCreateEnv}, {&a.releaseEnv, idxReleaseEnv},
		{&a.createOptions, idxCreateSessionOptions}, {&a.setOptLevel, idxSetGraphOptimizationLevel},
		{&a.setIntraThreads, idxSetIntraOpNumThreads}, {&a.setInterThreads, idxSetInterOpNumThreads},
		{&a.releaseOptions, idxReleaseSessionOptions}, {&a.addConfigEntry, idxAddSessionConfigEntry},
		{&a.createSession, idxCreateSessionFromArray}, {&a.releaseSession, idxReleaseSession},
		{&a.inputCount, idxSessionGetInputCount}, {&a.outputCount, idxSessionGetOutputCount},
		{&a.inputName, idxSessionGetInputName}, {&a.outputName, idxSessionGetOutputName},
		{&a.inputTypeInfo, idxSessionGetInputTypeInfo}, {&a.outputTypeInfo, idxSessionGetOutputTypeInfo},
		{&a.castToTensorInfo, idxCastTypeInfoToTensorInfo}, {&a.releaseTypeInfo, idxReleaseTypeInfo},
		{&a.elementType, idxGetTensorElementType}, {&a.dimensionsCount, idxGetDimensionsCount},
		{&a.dimensions, idxGetDimensions}, {&a.valueTypeAndShape, idxGetTensorTypeAndShape},
		{&a.releaseShapeInfo, idxReleaseTensorTypeAndShapeInfo},
		{&a.defaultAllocator, idxGetAllocatorWithDefaultOptions}, {&a.allocatorFree, idxAllocatorFree},
		{&a.cpuMemoryInfo, idxCreateCpuMemoryInfo}, {&a.releaseMemoryInfo, idxReleaseMemoryInfo},
		{&a.createTensor, idxCreateTensorWithDataAsOrtValue}, {&a.tensorData, idxGetTensorMutableData},
		{&a.releaseValue, idxReleaseValue}, {&a.run, idxRun}, {&a.buildInfo, idxGetBuildInfoString},
	}
	for _, f := range fns {
		purego.RegisterFunc(f.fn, entry(t, f.idx))
	}
	return a
}

// BuildInfo is the library's own description of its build.
func (rt *Runtime) BuildInfo() string { return rt.api.buildInfo() }

// status turns an OrtStatus into an error (nil for success) and frees it.
func (rt *Runtime) status(st uintptr) error {
	if st == 0 {
		return nil
	}
	msg := rt.api.getErrorMessage(st)
	rt.api.releaseStatus(st)
	return errors.New(msg)
}

// Tensor describes a session's input or output: its name, element type
// (TypeInt64, TypeFloat, …) and shape, -1 for a dimension the model leaves
// free (batch, sequence).
type Tensor struct {
	Name  string
	Type  int32
	Shape []int64
}

// Session is a loaded model. Run may be called from several goroutines at
// once (ONNX Runtime's sessions are safe for concurrent Run).
type Session struct {
	rt      *Runtime
	handle  uintptr
	Inputs  []Tensor
	Outputs []Tensor
	inNames []*byte // NUL-terminated, kept for Run
	outName []*byte
	mu      sync.RWMutex // Close waits for runs in flight
	closed  bool
}

// SessionOptions tune a session.
type SessionOptions struct {
	// IntraOpThreads is the threads one operator may use (0: ONNX
	// Runtime's default, one per core).
	IntraOpThreads int
	// Spin lets those threads spin while they wait for work (ONNX
	// Runtime's default). Off, they sleep: a server whose other goroutines
	// (HTTP, tokenizing) share the cores gets them back between runs.
	Spin bool
}

// NewSession loads a model from its bytes.
func (rt *Runtime) NewSession(model []byte, o SessionOptions) (*Session, error) {
	if len(model) == 0 {
		return nil, errors.New("cannot load an empty ONNX model")
	}
	var opts uintptr
	if err := rt.status(rt.api.createOptions(&opts)); err != nil {
		return nil, err
	}
	defer rt.api.releaseOptions(opts)
	if err := rt.status(rt.api.setOptLevel(opts, 99)); err != nil { // every graph optimisation
		return nil, err
	}
	if err := rt.status(rt.api.setIntraThreads(opts, int32(o.IntraOpThreads))); err != nil {
		return nil, err
	}
	if err := rt.status(rt.api.setInterThreads(opts, 1)); err != nil {
		return nil, err
	}
	if !o.Spin {
		if err := rt.status(rt.api.addConfigEntry(opts, "session.intra_op.allow_spinning", "0")); err != nil {
			return nil, err
		}
	}
	s := &Session{rt: rt}
	err := rt.status(rt.api.createSession(rt.env, unsafe.Pointer(&model[0]), uintptr(len(model)), opts, &s.handle))
	runtime.KeepAlive(model)
	if err != nil {
		return nil, fmt.Errorf("cannot load the ONNX model: %w", err)
	}
	if err := s.describe(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// describe reads the session's inputs and outputs.
func (s *Session) describe() error {
	a := s.rt.api
	var nIn, nOut uintptr
	if err := s.rt.status(a.inputCount(s.handle, &nIn)); err != nil {
		return err
	}
	if err := s.rt.status(a.outputCount(s.handle, &nOut)); err != nil {
		return err
	}
	for i := range nIn {
		t, err := s.tensor(i, a.inputName, a.inputTypeInfo)
		if err != nil {
			return fmt.Errorf("input %d: %w", i, err)
		}
		s.Inputs = append(s.Inputs, t)
		s.inNames = append(s.inNames, cString(t.Name))
	}
	for i := range nOut {
		t, err := s.tensor(i, a.outputName, a.outputTypeInfo)
		if err != nil {
			return fmt.Errorf("output %d: %w", i, err)
		}
		s.Outputs = append(s.Outputs, t)
		s.outName = append(s.outName, cString(t.Name))
	}
	if nIn == 0 || nOut == 0 {
		return fmt.Errorf("the model has %d inputs and %d outputs: a classifier needs both", nIn, nOut)
	}
	return nil
}

func (s *Session) tensor(i uintptr, name func(uintptr, uintptr, uintptr, *unsafe.Pointer) uintptr,
	typeInfo func(uintptr, uintptr, *uintptr) uintptr) (Tensor, error) {
	rt := s.rt
	var p unsafe.Pointer
	if err := rt.status(name(s.handle, i, rt.alloc, &p)); err != nil {
		return Tensor{}, err
	}
	t := Tensor{Name: goString(p)}
	if err := rt.status(rt.api.allocatorFree(rt.alloc, p)); err != nil {
		return Tensor{}, err
	}
	var info uintptr
	if err := rt.status(typeInfo(s.handle, i, &info)); err != nil {
		return Tensor{}, err
	}
	defer rt.api.releaseTypeInfo(info)
	var tinfo uintptr // owned by info
	if err := rt.status(rt.api.castToTensorInfo(info, &tinfo)); err != nil {
		return Tensor{}, err
	}
	if tinfo == 0 {
		return Tensor{}, fmt.Errorf("%s is not a tensor", t.Name)
	}
	shape, typ, err := rt.shapeOf(tinfo)
	t.Type, t.Shape = typ, shape
	return t, err
}

// shapeOf reads a tensor's element type and shape.
func (rt *Runtime) shapeOf(info uintptr) ([]int64, int32, error) {
	var typ int32
	if err := rt.status(rt.api.elementType(info, &typ)); err != nil {
		return nil, 0, err
	}
	var n uintptr
	if err := rt.status(rt.api.dimensionsCount(info, &n)); err != nil {
		return nil, 0, err
	}
	shape := make([]int64, n)
	if n > 0 {
		if err := rt.status(rt.api.dimensions(info, unsafe.Pointer(&shape[0]), n)); err != nil {
			return nil, 0, err
		}
	}
	return shape, typ, nil
}

// Int64Input is one int64 input of a Run: values, row after row, of the
// given shape.
type Int64Input struct {
	Values []int64
	Shape  []int64
}

// Output is a float32 output of a Run, with its shape.
type Output struct {
	Values []float32
	Shape  []int64
}

// Run feeds inputs (in the order of s.Inputs, every one int64) and
// returns every output (in the order of s.Outputs, every one float32).
func (s *Session) Run(inputs []Int64Input) ([]Output, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errors.New("the ONNX session is closed")
	}
	if len(inputs) != len(s.Inputs) {
		return nil, fmt.Errorf("%d inputs given, the model takes %d", len(inputs), len(s.Inputs))
	}
	rt := s.rt
	values := make([]uintptr, len(inputs))
	defer func() {
		for _, v := range values {
			if v != 0 {
				rt.api.releaseValue(v)
			}
		}
	}()
	for i, in := range inputs {
		if err := checkShape(in); err != nil {
			return nil, fmt.Errorf("input %s: %w", s.Inputs[i].Name, err)
		}
		err := rt.status(rt.api.createTensor(rt.mem, unsafe.Pointer(&in.Values[0]), uintptr(8*len(in.Values)),
			unsafe.Pointer(&in.Shape[0]), uintptr(len(in.Shape)), TypeInt64, &values[i]))
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", s.Inputs[i].Name, err)
		}
	}
	outputs := make([]uintptr, len(s.Outputs))
	defer func() {
		for _, v := range outputs {
			if v != 0 {
				rt.api.releaseValue(v)
			}
		}
	}()
	inNames, outNames := pointers(s.inNames), pointers(s.outName)
	err := rt.status(rt.api.run(s.handle, 0, unsafe.Pointer(&inNames[0]), unsafe.Pointer(&values[0]), uintptr(len(values)),
		unsafe.Pointer(&outNames[0]), uintptr(len(outNames)), unsafe.Pointer(&outputs[0])))
	runtime.KeepAlive(inputs)
	runtime.KeepAlive(s.inNames)
	runtime.KeepAlive(s.outName)
	if err != nil {
		return nil, fmt.Errorf("the ONNX model failed: %w", err)
	}
	out := make([]Output, len(outputs))
	for i, v := range outputs {
		o, err := rt.floats(v)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", s.Outputs[i].Name, err)
		}
		out[i] = o
	}
	return out, nil
}

// checkShape refuses an input whose values do not fill its shape.
func checkShape(in Int64Input) error {
	if len(in.Shape) == 0 || len(in.Values) == 0 {
		return errors.New("empty tensor")
	}
	n := int64(1)
	for _, d := range in.Shape {
		if d <= 0 || n > (1<<40)/d {
			return fmt.Errorf("shape %v", in.Shape)
		}
		n *= d
	}
	if n != int64(len(in.Values)) {
		return fmt.Errorf("shape %v holds %d values, %d given", in.Shape, n, len(in.Values))
	}
	return nil
}

// floats copies a float32 tensor out of ONNX Runtime's memory.
func (rt *Runtime) floats(v uintptr) (Output, error) {
	var info uintptr
	if err := rt.status(rt.api.valueTypeAndShape(v, &info)); err != nil {
		return Output{}, err
	}
	shape, typ, err := rt.shapeOf(info)
	rt.api.releaseShapeInfo(info)
	if err != nil {
		return Output{}, err
	}
	if typ != TypeFloat {
		return Output{}, fmt.Errorf("element type %d, want float (%d)", typ, TypeFloat)
	}
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	var data unsafe.Pointer
	if err := rt.status(rt.api.tensorData(v, &data)); err != nil {
		return Output{}, err
	}
	values := make([]float32, n)
	if n > 0 {
		copy(values, unsafe.Slice((*float32)(data), n))
	}
	return Output{Values: values, Shape: shape}, nil
}

// Close releases the session once the runs in flight have ended; its
// memory goes back to the system.
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed && s.handle != 0 {
		s.rt.api.releaseSession(s.handle)
	}
	s.closed = true
}

// cString is s as a NUL-terminated byte array.
func cString(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

// pointers are the addresses of NUL-terminated names, as a C array of
// strings; the names must stay alive (KeepAlive) until the call returns.
func pointers(names []*byte) []uintptr {
	out := make([]uintptr, len(names))
	for i, n := range names {
		out[i] = uintptr(unsafe.Pointer(n))
	}
	return out
}

// goString copies a NUL-terminated C string.
func goString(p unsafe.Pointer) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// CachedLibrary is where `make onnxruntime` leaves the library
// ($XDG_CACHE_HOME/sentiment-analyzer-pro/onnxruntime/libonnxruntime.so.1),
// or "" when it is not there.
func CachedLibrary() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	lib := filepath.Join(dir, "sentiment-analyzer-pro", "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(lib); err != nil {
		return ""
	}
	return lib
}
