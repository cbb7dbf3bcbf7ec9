"""A gRPC client of the Open Inference Protocol (KServe V2), written from
the protocol's specification with Debian's python3-grpcio: its stubs are
generated at run time by grpc_tools.protoc (python3-grpc-tools) from the
protocol's proto file. It makes every call of inference.GRPCInferenceService
the way KServe's InferenceGRPCClient and Triton's tritonclient.grpc do
(typed contents, and raw_input_contents as tritonclient sends), decodes
every answer, and prints one JSON object of what it saw. The Go test
(grpc_test.go) runs it against the edge binary and judges the output.

usage: grpc_client.py PROTO TARGET MODEL TEXT...
"""

import json
import os
import struct
import sys
import tempfile

import grpc
from grpc_tools import protoc


def stubs(proto):
    """Generates and imports the Python modules of PROTO."""
    out = tempfile.mkdtemp(prefix="oip-stubs-")
    include = os.path.dirname(os.path.abspath(proto))
    rc = protoc.main(["grpc_tools.protoc", "-I" + include, "--python_out=" + out, "--grpc_python_out=" + out,
                      os.path.basename(proto)])
    if rc != 0:
        sys.exit("protoc failed on %s" % proto)
    sys.path.insert(0, out)
    base = os.path.splitext(os.path.basename(proto))[0]
    return __import__(base + "_pb2"), __import__(base + "_pb2_grpc")


def raw_bytes(texts):
    """BYTES elements as the protocol's raw form: a 4-byte little-endian
    length, then the bytes."""
    out = b""
    for t in texts:
        b = t.encode("utf-8")
        out += struct.pack("<I", len(b)) + b
    return out


def decode_raw(datatype, data):
    if datatype == "BYTES":
        items, i = [], 0
        while i < len(data):
            (n,) = struct.unpack_from("<I", data, i)
            items.append(data[i + 4:i + 4 + n].decode("utf-8"))
            i += 4 + n
        return items
    if datatype == "FP32":
        return list(struct.unpack("<%df" % (len(data) // 4), data))
    raise ValueError("unexpected datatype " + datatype)


def decode_typed(tensor):
    if tensor.datatype == "BYTES":
        return [b.decode("utf-8") for b in tensor.contents.bytes_contents]
    return list(tensor.contents.fp32_contents)


def outputs(resp, raw):
    seen = {}
    for i, o in enumerate(resp.outputs):
        data = decode_raw(o.datatype, resp.raw_output_contents[i]) if raw else decode_typed(o)
        seen[o.name] = {"datatype": o.datatype, "shape": list(o.shape), "data": data}
    return seen


def code_of(call):
    try:
        call()
        return "OK"
    except grpc.RpcError as e:
        return e.code().name + ": " + e.details()


def main():
    proto, target, model, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    pb, pb_grpc = stubs(proto)
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    md = [("x-request-id", "grpc-conformance-1")]
    seen = {}
    seen["live"] = stub.ServerLive(pb.ServerLiveRequest()).live
    seen["ready"] = stub.ServerReady(pb.ServerReadyRequest()).ready
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    seen["server"] = {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
    seen["model_ready"] = stub.ModelReady(pb.ModelReadyRequest(name=model)).ready
    mm = stub.ModelMetadata(pb.ModelMetadataRequest(name=model))
    seen["model"] = {
        "name": mm.name, "versions": list(mm.versions), "platform": mm.platform,
        "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in mm.inputs],
        "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in mm.outputs],
    }

    # KServe's InferenceGRPCClient: typed contents.
    req = pb.ModelInferRequest(model_name=model, id="typed-1")
    tensor = req.inputs.add()
    tensor.name, tensor.datatype = "text", "BYTES"
    tensor.shape.extend([len(texts)])
    tensor.contents.bytes_contents.extend([t.encode("utf-8") for t in texts])
    resp, call = stub.ModelInfer.with_call(req, metadata=md)
    seen["typed"] = {"id": resp.id, "model_name": resp.model_name, "model_version": resp.model_version,
                     "outputs": outputs(resp, False), "raw_outputs": len(resp.raw_output_contents),
                     "request_id": dict(call.initial_metadata()).get("x-request-id")}

    # tritonclient.grpc: raw_input_contents, named outputs, a 1×N shape.
    req = pb.ModelInferRequest(model_name=model, id="raw-1")
    tensor = req.inputs.add()
    tensor.name, tensor.datatype = "TEXT", "BYTES"
    tensor.shape.extend([1, len(texts)])
    req.raw_input_contents.append(raw_bytes(texts))
    for name in ("probabilities", "label"):
        req.outputs.add().name = name
    resp = stub.ModelInfer(req)
    seen["raw"] = {"id": resp.id, "outputs": outputs(resp, True), "order": [o.name for o in resp.outputs]}

    # What a client gets wrong is refused with the protocol's codes.
    bad_model = pb.ModelInferRequest(model_name="no-such-model")
    bad_type = pb.ModelInferRequest(model_name=model)
    t = bad_type.inputs.add()
    t.name, t.datatype = "text", "FP32"
    t.shape.extend([1])
    t.contents.fp32_contents.extend([1.0])
    bad_raw = pb.ModelInferRequest(model_name=model)
    t = bad_raw.inputs.add()
    t.name, t.datatype = "text", "BYTES"
    t.shape.extend([1])
    bad_raw.raw_input_contents.append(struct.pack("<I", 99) + b"short")
    seen["errors"] = {
        "unknown model": code_of(lambda: stub.ModelInfer(bad_model)),
        "wrong datatype": code_of(lambda: stub.ModelInfer(bad_type)),
        "bad raw length": code_of(lambda: stub.ModelInfer(bad_raw)),
        "metadata of an unknown model": code_of(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"))),
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
