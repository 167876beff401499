#!/usr/bin/env python3
"""Writes Fixtures/tokenizer/{sp-llama2,sp-metaspace,sp-gemma,sp-gemma3,unigram}/: small
SentencePiece-style tokenizers trained with the `tokenizers` package on a slice of the corpus, in
the forms Llama 2 (Prepend and Replace normalizers), Mistral (Metaspace pre-tokenizer), Gemma
(Replace only), Gemma 3 (Replace, then a Split on the space it has replaced, and spellings that
are only canonically equal held as distinct tokens) and T5/ALBERT
(Unigram) ship, each with byte fallback, and the ids and decodings `tokenizers` gives
for a set of hard strings.

    PYTHONPATH=~/.cache/qtoolchain-models/py python3 Fixtures/make_sentencepiece_tokenizer_fixtures.py

`tokenizers` ignores tokenizer_config.json; `ids_with_special` applies its add_bos_token and
add_eos_token as transformers' fast Llama and Gemma tokenizers do (they rebuild the post-processor
from those flags).
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

MODELS = os.path.expanduser("~/.cache/qtoolchain-models")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenizer")
CORPUS = os.path.join(MODELS, "corpus", "wiki_vital_en.train.txt")

TEXTS = {
    "prose": "The quick brown fox jumps over the lazy dog. It wasn't me, they'd said; we'll see.",
    "empty": "",
    "single_space": " ",
    "spaces_only": "    ",
    "leading_trailing": "  hello world  ",
    "multiple_spaces": "a  b   c    d     e",
    "newlines": "line one\n\nline two\n\n\n   \n indented\nend\n",
    "tabs": "\tcol1\tcol2\t\tcol3\t",
    "crlf": "first\r\nsecond\r\n\r\nthird",
    "emoji": "Hello 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷!",
    "cjk": "日本語のテキスト、中文文本。한국어 텍스트",
    "accents": "Café naïve résumé Ångström façade São Paulo Zürich",
    "combining": "Cafe\u0301 nai\u0308ve",
    "digits": "In 1984 there were 1234567 people, 3.14159 and 0x1F; 12,345.67 $ 99%",
    "special_inline": "<s>Hello</s> and <unk> then <s> <s>x</s>",
    "special_start": "<s> starts with a special token",
    "byte_token_text": "literal <0x41> and <0xZZ> text",
    "long_word": "x" * 300 + " " + "antidisestablishmentarianism" * 12 + " end",
    "punctuation": "Wait...what?! (yes) [no] {maybe} --- ''quoted'' \"dq\" ~~ @#$%^&*",
    "mixed_scripts": "Ελληνικά кириллица العربية עברית हिन्दी ไทย",
    "controls": "a\x04b\x1cc\u2028d\u0085e\x00f",
    "metaspace_char": "\u2581already\u2581marked \u2581\u2581two",
}

DECODE_IDS = ["<0xE2>", "<0x82>"], ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"], ["<0xC3>", "a"], ["<0xFF>"]

SPECIALS = ["<unk>", "<s>", "</s>"]


def corpus_slice(limit=400_000):
    with open(CORPUS, encoding="utf-8") as f:
        text = f.read(limit)
    return text.splitlines()


def add_byte_tokens(data):
    """Appends <0x00>..<0xFF> to a trained vocabulary, as SentencePiece models with byte
    fallback hold them (the trainers here do not make them)."""
    model = data["model"]
    if model["type"] == "BPE":
        vocab = model["vocab"]
        for b in range(256):
            vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    else:
        vocab = model["vocab"]
        present = {piece for piece, _ in vocab}
        for b in range(256):
            if f"<0x{b:02X}>" not in present:
                vocab.append([f"<0x{b:02X}>", 0.0])
    model["byte_fallback"] = True


def train_bpe(normalizer, pre_tokenizer, decoder, specials, vocab_size=900):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, limit_alphabet=120,
                                  show_progress=False)
    # The trainer needs words: train with a Metaspace splitter, then put the real pipeline back.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.normalizer = None
    tok.train_from_iterator(corpus_slice(), trainer=trainer)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    data = json.loads(tok.to_str())
    add_byte_tokens(data)
    return data


def train_unigram():
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=800, special_tokens=SPECIALS, unk_token="<unk>",
                                      show_progress=False, max_piece_length=12)
    tok.train_from_iterator(corpus_slice(), trainer=trainer)
    data = json.loads(tok.to_str())
    add_byte_tokens(data)
    return data


def sp_decoder(strip):
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    if strip:
        steps.append(decoders.Strip(" ", 1, 0))
    return decoders.Sequence(steps)


# Spellings a vocabulary holds apart that are only canonically equal: ';' and the Greek question
# mark, 'é' precomposed and 'e' + U+0301, 'Å' and the Angstrom sign (Gemma 3's vocabulary has such
# pairs). Added to the Gemma 3 case with the merges that build the two-scalar spellings.
CANONICAL_PIECES = [";", "\u037e", "\u00e9", "\u0301", "e\u0301", "\u00c5", "\u212b", "\u212bm", "\u00e9s"]
CANONICAL_MERGES = [["e", "\u0301"], ["\u212b", "m"], ["\u00e9", "s"]]
CANONICAL_TEXTS = {
    "canonical_pairs": "a;b\u037ec cafe\u0301 caf\u00e9s cafe\u0301s \u00c5m \u212bm \u212b\u212b ;\u037e;",
}


def add_canonical_pieces(data):
    model = data["model"]
    vocab = model["vocab"]
    for piece in CANONICAL_PIECES:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    for left, right in CANONICAL_MERGES:
        for part in (left, right):
            assert part in vocab, part
        model["merges"].append([left, right] if isinstance(model["merges"][0], list) else f"{left} {right}")


def write_case(name, data, config, extra_texts=None):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    if config is not None:
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_file(path)
    config = config or {}
    bos = tok.token_to_id(config["bos_token"]) if "bos_token" in config else None
    eos = tok.token_to_id(config["eos_token"]) if "eos_token" in config else None
    cases = []
    for key, text in {**TEXTS, **(extra_texts or {})}.items():
        ids = tok.encode(text, add_special_tokens=False).ids
        with_special = tok.encode(text, add_special_tokens=True).ids
        if "add_bos_token" in config or "add_eos_token" in config:
            with_special = ([bos] if config.get("add_bos_token") else []) + ids
            with_special += [eos] if config.get("add_eos_token") else []
        cases.append({
            "name": key, "text": text, "ids": ids, "ids_with_special": with_special,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skipping_special": tok.decode(ids, skip_special_tokens=True),
        })
    decodes = []
    for pieces in DECODE_IDS:
        ids = [tok.token_to_id(p) for p in pieces]
        if None not in ids:
            decodes.append({"ids": ids, "text": tok.decode(ids)})
    expected = {"cases": cases, "decodes": decodes, "chats": []}
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=0)


def main():
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]

    # Llama 2 as converted by transformers before 4.41: normalizers, no pre-tokenizer, BOS by template.
    llama2 = train_bpe(
        normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]),
        None, sp_decoder(strip=True), SPECIALS)
    llama2["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]).to_str()) \
        if hasattr(processors.TemplateProcessing, "to_str") else {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    write_case("sp-llama2", llama2, None)

    # Mistral / newer Llama conversions: Metaspace pre-tokenizer prepending on the first piece only.
    metaspace = train_bpe(
        None, pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False),
        sp_decoder(strip=True), SPECIALS)
    write_case("sp-metaspace", metaspace, {
        "add_bos_token": True, "add_eos_token": True, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>"})

    # Gemma: spaces replaced, nothing prepended, no Strip in the decoder.
    gemma = train_bpe(normalizers.Replace(" ", "\u2581"), None, sp_decoder(strip=False),
                      ["<pad>", "</s>", "<s>", "<unk>"])
    write_case("sp-gemma", gemma, {
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>"})

    # Gemma 3: the same, with the pre-tokenizer its conversion writes, a Split on " " that
    # the normalizer leaves nothing to find.
    gemma3 = json.loads(json.dumps(gemma))
    add_canonical_pieces(gemma3)
    gemma3["pre_tokenizer"] = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                               "invert": False}
    write_case("sp-gemma3", gemma3, {
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>"},
        CANONICAL_TEXTS)

    unigram = train_unigram()
    write_case("unigram", unigram, None)


if __name__ == "__main__":
    main()
