"""The example ONNX model's PyTorch original behind Flask, as the original
product's production guide served models (Flask under gunicorn): make
bench's baseline for the edge. POST /v1/predict {"text": ...} answers the
label and each label's probability; GET /health answers ok.

SAP_TORCH_WEIGHTS names the weights train.py saved (OUT.pt); the
tokenizer files are beside them, in OUT/."""
import json
import os

import torch
import torch.nn.functional as F
from flask import Flask, jsonify, request

import train
import wordpiece_vocab as wv

torch.set_num_threads(1)
weights = os.environ["SAP_TORCH_WEIGHTS"]
saved = torch.load(weights)
bundle_dir = weights[:-len(".pt")]
task = train.TASKS[saved["task"]]
vocab = [line.rstrip("\n") for line in open(os.path.join(bundle_dir, "vocab.txt"), encoding="utf-8")]
tokenizer = wv.WordPiece(vocab, train.MAX_LENGTH)
model = train.Encoder(len(vocab), dim=task["dim"], layers=task["layers"], labels=len(task["labels"]))
model.load_state_dict(saved["state_dict"])
model.eval()
app = Flask(__name__)


@app.get("/health")
def health():
    return "ok\n"


@app.post("/v1/predict")
def predict():
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return jsonify(error='want {"text": "..."}'), 400
    ids = torch.tensor([tokenizer.encode(body["text"])])
    with torch.no_grad():
        probs = F.softmax(model(ids, torch.ones_like(ids)), dim=-1)[0].tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    labels = task["labels"]
    return jsonify(label=labels[best], score=probs[best], probabilities=dict(zip(labels, probs)))
