#!/usr/bin/env python3
"""Writes Fixtures/tokenizer/: trimmed copies of the SmolLM2 and Qwen2.5 tokenizers (the first
merges and the vocabulary they need), a Llama-3-style variant, and the ids, decodings and chat
renderings the `tokenizers` package and the real Jinja templates give for them.

    PYTHONPATH=~/.cache/qtoolchain-models/py python3 Fixtures/make_tokenizer_fixtures.py
"""
import json
import os

import jinja2
from tokenizers import Tokenizer

MODELS = os.path.expanduser("~/.cache/qtoolchain-models")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")
MERGES = 2500

TEXTS = {
    "prose": "The quick brown fox jumps over the lazy dog. It wasn't me, they'd said; we'll see.",
    "code": "def f(x):\n    return {'a': x ** 2, \"b\": [1, 2, 3]}  # done\n\tif x != None: pass\n",
    "digits": "In 1984 there were 1234567 people, 3.14159 and 0x1F; 12,345.67 $ 99%",
    "whitespace": "a  b   c    d\t\te \u00a0f\u3000g      \n  h   ",
    "newlines": "line one\n\nline two\n\n\n   \n indented\nend\n",
    "crlf": "first\r\nsecond\r\n\r\nthird \r\n  fourth\r",
    "emoji": "Hello 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷!",
    "cjk": "日本語のテキスト、中文文本。한국어 텍스트",
    "combining": "Cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030a \u1e9b\u0323 Zalgo z\u0351\u0358a",
    "contractions": "I'm you're he's she'll we've they'd it's I'M YOU'RE HE'S 'Stuff 'ſtuff 'LLama o'clock",
    "special_inline": "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello<|endoftext|>",
    "added_flags": "Say <mask> now and a<mask>b and <mask>\tthere  <mask>",
    "punctuation": "Wait...what?! (yes) [no] {maybe} --- ''quoted'' \"dq\" ``tick`` ~~ @#$%^&*",
    "long_word": "x" * 120 + " " + "ab" * 80 + " " + " " * 70 + "end",
    "mixed_scripts": "Ελληνικά кириллица العربية עברית हिन्दी ไทย",
    "controls": "a\x04b\x1cc\u2028d\u0085e\x00f",
    "empty": "",
    "single_space": " ",
}

DECODE_IDS_BYTES = [[0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3], [0xE2, 0x82, 0xAC], [0xFF, 0x41, 0x80, 0x80]]

CHATS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
]


def trim(tokenizer_json, merges_kept, extra_words=()):
    """Keeps the first merges, the vocabulary they need, every single-character symbol and the
    added tokens the vocabulary holds, renumbered densely in the original order; added tokens
    outside the vocabulary follow it, as `tokenizers` numbers them when loading."""
    data = json.load(open(tokenizer_json, encoding="utf-8"))
    model = data["model"]
    merges = model["merges"][:merges_kept]
    pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in merges]
    needed = {k for k in model["vocab"] if len(k) == 1}
    needed.update(t["content"] for t in data["added_tokens"] if t["content"] in model["vocab"])
    for a, b in pairs:
        needed.update((a, b, a + b))
    kept = sorted((v, k) for k, v in model["vocab"].items() if k in needed)
    vocab = {k: i for i, (_, k) in enumerate(kept)}
    for word in extra_words:
        vocab[word] = len(vocab)
    model["vocab"] = vocab
    model["merges"] = merges
    next_id = len(vocab)
    for token in data["added_tokens"]:
        if token["content"] in vocab:
            token["id"] = vocab[token["content"]]
        else:
            token["id"] = next_id
            next_id += 1
    return data


def byte_symbols():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_case(name, data, config, added=None):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    if added:
        data["added_tokens"] += added
    path = os.path.join(folder, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    if config is not None:
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_file(path)
    symbols = byte_symbols()
    cases = []
    for text_name, text in TEXTS.items():
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "name": text_name, "text": text, "ids": ids,
            "ids_with_special": tok.encode(text, add_special_tokens=True).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skipping_special": tok.decode(ids, skip_special_tokens=True),
        })
    decodes = []
    for raw in DECODE_IDS_BYTES:
        ids = [tok.token_to_id(symbols[b]) for b in raw]
        if None not in ids:
            decodes.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)})
    chats = []
    if config and "chat_template" in config:
        template = jinja2.Environment().from_string(config["chat_template"])
        for messages in CHATS:
            chats.append({"messages": messages,
                          "text": template.render(messages=messages, add_generation_prompt=True)})
    expected = {"cases": cases, "decodes": decodes, "chats": chats}
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=0)


def main():
    smol = os.path.join(MODELS, "smollm2-135m-instruct-hf")
    qwen = os.path.join(MODELS, "qwen2.5-coder-0.5b-instruct-hf")
    smol_config = json.load(open(os.path.join(smol, "tokenizer_config.json")))
    qwen_config = json.load(open(os.path.join(qwen, "tokenizer_config.json")))
    for config in (smol_config, qwen_config):
        config.pop("added_tokens_decoder", None)

    write_case("smollm2", trim(os.path.join(smol, "tokenizer.json"), MERGES), smol_config)

    qwen_data = trim(os.path.join(qwen, "tokenizer.json"), MERGES)
    mask = {"id": max(t["id"] for t in qwen_data["added_tokens"]) + 1, "content": "<mask>", "single_word": True, "lstrip": True, "rstrip": True,
            "normalized": True, "special": False}
    write_case("qwen2", qwen_data, qwen_config, added=[mask])

    # Llama 3 form: \p{N}{1,3}, ignore_merges, BOS from a TemplateProcessing post-processor,
    # merges written as pairs; built from the Qwen2 vocabulary.
    # A whole word present in the vocabulary without the merges that would build it.
    llama = trim(os.path.join(qwen, "tokenizer.json"), MERGES, extra_words=["Ġzebra"])
    split = llama["pre_tokenizer"]["pretokenizers"][0]
    split["pattern"]["Regex"] = split["pattern"]["Regex"].replace(r"\p{N}|", r"\p{N}{1,3}|")
    llama["normalizer"] = None
    llama["model"]["ignore_merges"] = True
    llama["model"]["merges"] = [m.split(" ", 1) for m in llama["model"]["merges"]]
    endoftext = next(t["id"] for t in llama["added_tokens"] if t["content"] == "<|endoftext|>")
    llama["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [endoftext],
                                                  "tokens": ["<|endoftext|>"]}}},
        ],
    }
    TEXTS["ignore_merges"] = "a zebra, zebras and zebra."
    write_case("llama3", llama, None)


if __name__ == "__main__":
    main()
