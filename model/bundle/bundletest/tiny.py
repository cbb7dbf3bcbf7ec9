"""Writes tiny.onnx, the binding's test model (Debian's python3-onnx; run from this
directory: /usr/bin/python3 tiny.py). It has the inputs and output of a text
classifier exported from Hugging Face: input_ids and attention_mask, int64
[batch, sequence], and logits, float [batch, 3]. Its logits are known in
closed form: with s the sum of the masked ids of a row,
logits = [s, -s, 0.5*s + 1]."""
import onnx
from onnx import TensorProto, helper

ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
nodes = [
    helper.make_node("Mul", ["input_ids", "attention_mask"], ["masked"]),
    helper.make_node("Cast", ["masked"], ["masked_f"], to=TensorProto.FLOAT),
    helper.make_node("ReduceSum", ["masked_f", "axes"], ["sum"], keepdims=1),
    helper.make_node("MatMul", ["sum", "weight"], ["scaled"]),
    helper.make_node("Add", ["scaled", "bias"], ["logits"]),
]
init = [
    helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    helper.make_tensor("weight", TensorProto.FLOAT, [1, 3], [1.0, -1.0, 0.5]),
    helper.make_tensor("bias", TensorProto.FLOAT, [3], [0.0, 0.0, 1.0]),
]
graph = helper.make_graph(nodes, "tiny", [ids, mask], [logits], init)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="sentiment-analyzer-pro")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "tiny.onnx")
