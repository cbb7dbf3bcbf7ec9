"""Builds a WordPiece vocabulary and the Hugging Face tokenizer files for the example model.

The vocabulary is frequency based: the special tokens, every character seen at least
MIN_CHAR_COUNT times (alone and as a "##" continuation), the most frequent whole words, then
the most frequent word beginnings and "##" continuations of the remaining words. Greedy
longest-match-first WordPiece (BERT's algorithm) then splits any word into these pieces.
The output is what a Hugging Face BERT export holds: vocab.txt, tokenizer.json,
tokenizer_config.json and special_tokens_map.json.
"""
import collections
import json
import os
import re
import unicodedata

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MIN_CHAR_COUNT = 3


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_words(text):
    """BERT's basic tokenizer, uncased: clean, isolate CJK, lowercase, strip accents, split."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        if _is_cjk(cp):
            out.append(" " + ch + " ")
        elif ch.isspace():
            out.append(" ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFD", "".join(out).lower())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    words = []
    for chunk in text.split():
        word = ""
        for ch in chunk:
            if _is_punctuation(ch):
                if word:
                    words.append(word)
                    word = ""
                words.append(ch)
            else:
                word += ch
        if word:
            words.append(word)
    return words


def build_vocab(texts, size, whole_words):
    words = collections.Counter()
    for text in texts:
        words.update(basic_words(text))
    chars = collections.Counter()
    for word, count in words.items():
        for ch in word:
            chars[ch] += count
    vocab = list(SPECIALS)
    seen = set(vocab)

    def add(token):
        if token not in seen:
            seen.add(token)
            vocab.append(token)

    alphabet = sorted(ch for ch, count in chars.items() if count >= MIN_CHAR_COUNT)
    for ch in alphabet:
        add(ch)
    for ch in alphabet:
        add("##" + ch)
    ranked = [w for w, _ in words.most_common()]
    for word in ranked[:whole_words]:
        add(word)
    pieces = collections.Counter()
    for word in ranked[whole_words:]:
        count = words[word]
        for n in range(2, min(len(word), 8) + 1):
            pieces[word[:n]] += count * n
        for start in range(1, len(word) - 1):
            for n in range(2, min(len(word) - start, 8) + 1):
                pieces["##" + word[start:start + n]] += count * n
    for piece, _ in pieces.most_common():
        if len(vocab) >= size:
            break
        add(piece)
    return vocab


def tokenizer_json(vocab, max_length):
    ids = {token: i for i, token in enumerate(vocab)}
    special = lambda token: {"id": ids[token], "content": token, "single_word": False,
                             "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    template = lambda items: [
        {"SpecialToken": {"id": x, "type_id": t}} if x.startswith("[") else {"Sequence": {"id": x, "type_id": t}}
        for x, t in items]
    return {
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0},
        "padding": None,
        "added_tokens": [special(t) for t in SPECIALS],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": template([("[CLS]", 0), ("A", 0), ("[SEP]", 0)]),
            "pair": template([("[CLS]", 0), ("A", 0), ("[SEP]", 0), ("B", 1), ("[SEP]", 1)]),
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }


def write_tokenizer_files(out_dir, vocab, max_length):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocab))
    dump(os.path.join(out_dir, "tokenizer.json"), tokenizer_json(vocab, max_length))
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                "cls_token": "[CLS]", "mask_token": "[MASK]"}
    dump(os.path.join(out_dir, "special_tokens_map.json"), specials)
    config = dict(specials, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True,
                  model_max_length=max_length, tokenizer_class="BertTokenizer",
                  clean_up_tokenization_spaces=True)
    dump(os.path.join(out_dir, "tokenizer_config.json"), config)


def dump(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=2, sort_keys=False)
        f.write("\n")


class WordPiece:
    """BERT's tokenizer over a vocab.txt: basic_words, then greedy longest-match-first pieces."""

    def __init__(self, vocab, max_length):
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.max_length = max_length

    def pieces(self, word):
        if len(word) > 100:
            return [self.ids["[UNK]"]]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    break
                end -= 1
            if start == end:
                return [self.ids["[UNK]"]]
            start = end
        return out

    def encode(self, text):
        """[CLS] pieces [SEP], cut to max_length. Special tokens spelled in
        the text are those tokens, as Hugging Face's tokenizers match them."""
        ids = []
        for part in re.split("(" + "|".join(re.escape(t) for t in SPECIALS) + ")", text):
            if part in SPECIALS:
                ids.append(self.ids[part])
            else:
                ids += [i for word in basic_words(part) for i in self.pieces(word)]
        ids = ids[:self.max_length - 2]
        return [self.ids["[CLS]"]] + ids + [self.ids["[SEP]"]]
