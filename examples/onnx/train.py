"""Trains, evaluates and exports an example ONNX model: a small BERT-style
transformer encoder trained from scratch on ../shared, written as the
bundle a Hugging Face ONNX export would be. Two tasks:

    --task sst2    negative/positive, on SST-2 train and IMDB; scored on SST-2 dev
    --task imdb3   negative/neutral/positive from IMDB's star ratings (1-3,
                   4 and 7, 8-10); scored on 10% of IMDB held out

The bundle:

    OUT/model.onnx               opset 14; inputs input_ids, attention_mask
                                 (int64 [batch, sequence]); output logits
                                 (float32 [batch, labels])
    OUT/config.json              id2label, label2id, max_position_embeddings
    OUT/tokenizer.json           WordPiece, uncased (wordpiece_vocab.py)
    OUT/tokenizer_config.json, OUT/special_tokens_map.json, OUT/vocab.txt
    OUT/eval_results.json        the held-out accuracy, as Hugging Face's Trainer writes it

and, beside the bundle, OUT.reference.jsonl: for the held-out texts and a
few harder ones, the ids this script's tokenizer gave and PyTorch's
probabilities, which the Go tests hold the edge to; OUT.metrics.json; and
OUT.pt, the PyTorch weights, which the Flask baseline of make bench serves.

    python3 train.py --shared ../../../shared --out sentiment-tiny-bert --epochs 2
    python3 train.py --shared ../../../shared --task imdb3 --out imdb3-tiny-bert --epochs 2

Needs Debian's python3-torch and python3-onnx. `make model-onnx` runs it.
"""
import argparse
import gzip
import json
import math
import os
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import wordpiece_vocab as wv

MAX_LENGTH = 128
VOCAB_SIZE = 8000
WHOLE_WORDS = 5000
TASKS = {
    "sst2": {"labels": ["negative", "positive"], "dim": 96, "layers": 2},
    "imdb3": {"labels": ["negative", "neutral", "positive"], "dim": 64, "layers": 1},
}

# Texts beyond SST-2 dev that the reference also covers: accents, CJK,
# emoji, URLs, special-token literals, white space, an empty text and one
# longer than MAX_LENGTH tokens.
EXTRA_TEXTS = [
    "",
    "   ",
    "Café naïve résumé: Über-cool façade!",
    "東京の映画はとても良かった 中文 한국어",
    "loved it 😀👍🏽 ❤️ would watch again",
    "see https://example.com/review?id=42&lang=en#top for more",
    "[CLS] this is [SEP] not [MASK] special",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u3000spaces",
    "zero\u200bwidth and control\u0007 chars",
    "I DON'T like it, I HATE it!!!",
    " ".join(["a wonderful, moving film that never lets up"] * 40),
]


def load_sst2(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            text, label = line.rstrip("\n").rsplit("\t", 1)
            rows.append((text.strip(), int(label)))
    return rows


def load_imdb(path, stars=False):
    """IMDB train: (text, label), or with stars (text, 0/1/2) for ratings
    1-3, 4 or 7, and 8-10."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            _, rating, label, text = line.rstrip("\n").split("\t", 3)
            text = text.replace("<br />", " ")
            if stars:
                r = int(rating)
                label = 0 if r <= 3 else 2 if r >= 8 else 1
            rows.append((text, int(label)))
    return rows


class Encoder(nn.Module):
    """BERT in small: token and position embeddings, LAYERS post-norm
    encoder layers, the [CLS] vector pooled through tanh, a linear head."""

    def __init__(self, vocab, dim=96, heads=4, ff=256, layers=2, labels=2):
        super().__init__()
        self.heads = heads
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(MAX_LENGTH, dim)
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(Layer(dim, heads, ff) for _ in range(layers))
        self.pool = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, labels)
        self.dropout = nn.Dropout(0.1)

    def forward(self, input_ids, attention_mask):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.dropout(self.norm(self.tokens(input_ids) + self.positions(positions)))
        # 0 where attended, a large negative number on padding.
        bias = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        pooled = torch.tanh(self.pool(x[:, 0]))
        return self.head(self.dropout(pooled))


class Layer(nn.Module):
    def __init__(self, dim, heads, ff):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ff)
        self.ff2 = nn.Linear(ff, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, bias):
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h) + bias
        attended = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = self.norm1(x + self.dropout(self.out(attended)))
        return self.norm2(x + self.dropout(self.ff2(F.gelu(self.ff1(x)))))


def batches(encoded, size, shuffle):
    """Batches of similar length (less padding), in random order."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    if shuffle:
        random.shuffle(groups)
    for group in groups:
        yield pad([encoded[i] for i in group])


def pad(rows):
    n = max(len(ids) for ids, _ in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, (row, _) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask, torch.tensor([label for _, label in rows])


def accuracy(model, encoded):
    model.eval()
    right = 0
    with torch.no_grad():
        for ids, mask, labels in batches(encoded, 256, False):
            right += (model(ids, mask).argmax(-1) == labels).sum().item()
    return right / len(encoded)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default="../../../shared")
    parser.add_argument("--out", default="sentiment-tiny-bert")
    parser.add_argument("--task", choices=sorted(TASKS), default="sst2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.time()

    task = TASKS[args.task]
    if args.task == "sst2":
        train = load_sst2(os.path.join(args.shared, "data/sst2/train.tsv"))
        train += load_imdb(os.path.join(args.shared, "data/imdb/train.tsv.gz"))
        dev = load_sst2(os.path.join(args.shared, "data/sst2/dev.tsv"))
    else:
        rows = load_imdb(os.path.join(args.shared, "data/imdb/train.tsv.gz"), stars=True)
        random.Random(args.seed).shuffle(rows)
        cut = len(rows) // 10
        train, dev = rows[cut:], rows[:cut]
    vocab = wv.build_vocab([text for text, _ in train], VOCAB_SIZE, WHOLE_WORDS)
    wv.write_tokenizer_files(args.out, vocab, MAX_LENGTH)
    tokenizer = wv.WordPiece(vocab, MAX_LENGTH)
    encoded = [(tokenizer.encode(text), label) for text, label in train]
    dev_encoded = [(tokenizer.encode(text), label) for text, label in dev]
    print(f"{len(train)} training texts, {len(dev)} dev, vocab {len(vocab)}, {time.time() - started:.0f}s", flush=True)

    labels = task["labels"]  # names; a batch's are its targets
    model = Encoder(len(vocab), dim=task["dim"], layers=task["layers"], labels=len(labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(encoded) / 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    for epoch in range(args.epochs):
        model.train()
        for ids, mask, targets in batches(encoded, 64, True):
            loss = F.cross_entropy(model(ids, mask), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}: held-out accuracy {accuracy(model, dev_encoded):.4f}, {time.time() - started:.0f}s", flush=True)

    model.eval()
    export(model, args.out)
    write_config(args.out, model, labels)
    torch.save({"state_dict": model.state_dict(), "task": args.task, "vocab": len(vocab)}, args.out + ".pt")
    write_reference(args.out + ".reference.jsonl", model, tokenizer, [t for t, _ in dev[:900]] + EXTRA_TEXTS)
    metrics = {"task": args.task, "held_out": "SST-2 dev" if args.task == "sst2" else "10% of IMDB train",
               "held_out_accuracy": round(accuracy(model, dev_encoded), 4), "train_texts": len(train),
               "epochs": args.epochs, "seed": args.seed, "vocab": len(vocab),
               "parameters": sum(p.numel() for p in model.parameters()),
               "seconds": round(time.time() - started), "torch": torch.__version__}
    wv.dump(args.out + ".metrics.json", metrics)
    # As Hugging Face's Trainer.save_metrics("eval", ...) writes it, in the
    # bundle: the registry records it, and the quality gate compares it.
    wv.dump(os.path.join(args.out, "eval_results.json"),
            {"epoch": float(args.epochs), "eval_accuracy": metrics["held_out_accuracy"], "eval_samples": len(dev)})
    print(json.dumps(metrics))


def export(model, out):
    ids = torch.tensor([[2, 100, 200, 3]])
    mask = torch.ones_like(ids)
    torch.onnx.export(
        model, (ids, mask), os.path.join(out, "model.onnx"),
        input_names=["input_ids", "attention_mask"], output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                      "attention_mask": {0: "batch", 1: "sequence"},
                      "logits": {0: "batch"}},
        opset_version=14, do_constant_folding=True)


def write_config(out, model, labels):
    config = {
        "architectures": ["TinyBertForSequenceClassification"],
        "model_type": "bert",
        "hidden_size": model.tokens.embedding_dim,
        "num_hidden_layers": len(model.layers),
        "num_attention_heads": model.heads,
        "max_position_embeddings": MAX_LENGTH,
        "vocab_size": model.tokens.num_embeddings,
        "id2label": {str(i): label for i, label in enumerate(labels)},
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "single_label_classification",
    }
    wv.dump(os.path.join(out, "config.json"), config)


def write_reference(path, model, tokenizer, texts):
    with open(path, "w", encoding="utf-8") as f, torch.no_grad():
        for text in texts:
            ids = tokenizer.encode(text)
            t = torch.tensor([ids])
            probs = F.softmax(model(t, torch.ones_like(t)), dim=-1)[0].tolist()
            f.write(json.dumps({"text": text, "ids": ids, "probabilities": [round(p, 6) for p in probs]},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
