#!/usr/bin/env python3
"""Writes Fixtures/gguf-engine/: tiny decoders as llama.cpp's converter would write them, for the
tests that run a GGUF file in the engine.

Written with the reference `gguf` package (GGUFWriter, and `gguf.quants` for blocks), following
convert_hf_to_gguf.py: tensor names `token_embd`, `blk.N.attn_q`, ..., metadata under the
architecture's name, and for the llama architecture the rows of q and k permuted so each head's
two rotary halves interleave (its `LlamaModel.permute`); Qwen2 is written unpermuted.
- tiny-llama.gguf: ../tiny-llama (F16) as F16, a 256-token byte-level vocabulary, no merges.
  The engine's logits must equal those of the safetensors folder.
- tiny-qwen2.gguf: ../llm/tiny-qwen2 (F32, q/k/v biases) as F32, 96 placeholder tokens.
- tiny-chat.gguf: ../tiny-chat with its tokenizer (gpt2 model, `smollm` pre-tokenizer, tokens,
  token types, merges, BOS/EOS, chat template); the embedding as Q4_1, the layers' matrices as
  Q8_0, norms F32. tiny-chat.expected.json holds what the numpy reference `np_llm.py` computes
  from the weights gguf-py dequantizes (and un-permutes): perplexity in 3 windows of 32 tokens
  of ../tiny-chat.sample.txt, the same scored as llama-perplexity scores (second half of every
  whole window), the greedy continuation of a prompt, and the text's token ids.
- tokenizer-sentencepiece.gguf: a 420-piece SentencePiece BPE vocabulary trained here, written as
  the converter writes a llama vocabulary (pieces, scores, types); tokenizer-sentencepiece.
  expected.json holds sentencepiece's own ids (BOS first) and decoded texts for a few strings.
Run: PYTHONPATH=~/.cache/qtoolchain-models/py python3 Fixtures/make_gguf_engine_fixtures.py
(needs gguf, numpy, tokenizers and sentencepiece)
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

from fixture_safetensors import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gguf-engine")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "models", "tools"))
sys.path.insert(0, "/work/shared/models/tools")

LAYER_NAMES = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F16": np.float16, "F32": np.float32}
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[entry["dtype"]]).reshape(entry["shape"])
    return out


def gguf_name(name):
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    parts = name.split(".")
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{LAYER_NAMES[module]}.{kind}"


def permute(weights, heads):
    """convert_hf_to_gguf.py's LlamaModel.permute (heads: n_head for q, n_head_kv for k)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def unpermute(weights, heads):
    return (weights.reshape(heads, weights.shape[0] // heads // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(tensors, config, arch):
    out = []
    for name, array in tensors.items():
        if arch == "llama" and ".q_proj." in name:
            array = permute(array, config["num_attention_heads"])
        elif arch == "llama" and ".k_proj." in name:
            array = permute(array, config["num_key_value_heads"])
        out.append((gguf_name(name), array))
    return out


def write(path, arch, config, tensors, vocab, types=None):
    """tensors: [(gguf name, array, quantization type or None)]; vocab: dict of tokenizer keys."""
    w = gguf.GGUFWriter(path, arch=arch)
    w.add_name(os.path.basename(path))
    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    w.add_rope_freq_base(config["rope_theta"])
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_dimension_count(config["head_dim"])
    w.add_vocab_size(config["vocab_size"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab["pre"])
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    if vocab.get("merges"):
        w.add_token_merges(vocab["merges"])
    for key in ("bos", "eos"):
        if key in vocab:
            getattr(w, f"add_{key}_token_id")(vocab[key])
    w.add_add_bos_token(False)
    if "chat_template" in vocab:
        w.add_chat_template(vocab["chat_template"])
    for name, array, qtype in tensors:
        if qtype is None:
            w.add_tensor(name, array)
        else:
            blocks = gguf.quants.quantize(array.astype(np.float32), qtype)
            w.add_tensor(name, blocks, raw_shape=blocks.shape, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def byte_level_alphabet():
    """GPT-2's printable stand-ins for the 256 bytes, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def tiny_llama():
    folder = os.path.join(HERE, "tiny-llama")
    config = json.load(open(os.path.join(folder, "config.json")))
    tensors = load_safetensors(os.path.join(folder, "model.safetensors"))
    vocab = {"pre": "gpt-2", "tokens": byte_level_alphabet(), "types": [1] * 256}
    write(os.path.join(OUT, "tiny-llama.gguf"), "llama", config,
          [(n, a, None) for n, a in gguf_tensors(tensors, config, "llama")], vocab)


def tiny_qwen2():
    folder = os.path.join(HERE, "llm", "tiny-qwen2")
    config = json.load(open(os.path.join(folder, "config.json")))
    tensors = load_safetensors(os.path.join(folder, "model.safetensors"))
    count = config["vocab_size"]
    vocab = {"pre": "qwen2", "tokens": [f"<t{i}>" for i in range(count)], "types": [1] * count}
    write(os.path.join(OUT, "tiny-qwen2.gguf"), "qwen2", config,
          [(n, a, None) for n, a in gguf_tensors(tensors, config, "qwen2")], vocab)


def tiny_chat():
    folder = os.path.join(HERE, "tiny-chat")
    config = json.load(open(os.path.join(folder, "config.json")))
    tensors = load_safetensors(os.path.join(folder, "model.safetensors"))
    tok = json.load(open(os.path.join(folder, "tokenizer.json")))
    tok_config = json.load(open(os.path.join(folder, "tokenizer_config.json")))
    by_id = {i: t for t, i in tok["model"]["vocab"].items()}
    special = {}
    for added in tok["added_tokens"]:
        by_id[added["id"]] = added["content"]
        special[added["id"]] = added["special"]
    tokens = [by_id[i] for i in range(len(by_id))]
    # convert_hf_to_gguf.py: special added tokens are CONTROL (3), other added USER_DEFINED (4).
    types = [(3 if special[i] else 4) if i in special else 1 for i in range(len(tokens))]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    ids = {t: i for i, t in enumerate(tokens)}
    vocab = {"pre": "smollm", "tokens": tokens, "types": types, "merges": merges,
             "bos": ids[tok_config["bos_token"]], "eos": ids[tok_config["eos_token"]],
             "chat_template": tok_config["chat_template"]}
    planned = []
    for name, array in gguf_tensors(tensors, config, "llama"):
        qtype = None if array.ndim == 1 else QT.Q4_1 if name == "token_embd.weight" else QT.Q8_0
        planned.append((name, array.astype(np.float32) if array.ndim == 1 else array, qtype))
    path = os.path.join(OUT, "tiny-chat.gguf")
    write(path, "llama", config, planned, vocab)

    # The reference: gguf-py's dequantization, rows un-permuted, through np_llm.
    import np_llm
    reader = gguf.GGUFReader(path)
    stored = {t.name: gguf.quants.dequantize(t.data, t.tensor_type) for t in reader.tensors}
    back = {}
    for name in tensors:
        array = np.asarray(stored[gguf_name(name)], dtype=np.float32).reshape(tensors[name].shape)
        if ".q_proj." in name:
            array = unpermute(array, config["num_attention_heads"])
        elif ".k_proj." in name:
            array = unpermute(array, config["num_key_value_heads"])
        back[name] = array
    work = tempfile.mkdtemp()
    try:
        save_file(back, os.path.join(work, "model.safetensors"))
        with open(os.path.join(work, "config.json"), "w") as f:
            json.dump(dict(config, torch_dtype="float32"), f)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(folder, name), os.path.join(work, name))
        model = np_llm.Model(work, None)
        tokenizer = np_llm.get_tok(work)
        text = open(os.path.join(HERE, "tiny-chat.sample.txt")).read()
        text_ids = tokenizer.encode(text, add_special_tokens=False).ids
        context, windows = 32, 3
        nll, count = 0.0, 0
        for w in range(windows):
            chunk = text_ids[w * context:(w + 1) * context]
            logits = model.forward(chunk[:-1]).astype(np.float64)
            logits -= logits.max(-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            nll -= logp[np.arange(len(chunk) - 1), np.array(chunk[1:])].sum()
            count += len(chunk) - 1
        # llama-perplexity's scoring: whole disjoint windows, targets of the second half only.
        half_nll, half_count = 0.0, 0
        for w in range(len(text_ids) // context):
            chunk = text_ids[w * context:(w + 1) * context]
            logits = model.forward(chunk).astype(np.float64)
            logits -= logits.max(-1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            for position in range(context // 2, context - 1):
                half_nll -= logp[position, chunk[position + 1]]
                half_count += 1
        prompt = "The quick brown fox"
        generated = tokenizer.encode(prompt, add_special_tokens=False).ids
        start = len(generated)
        for _ in range(8):
            generated.append(int(np.argmax(model.forward(generated)[-1])))
    finally:
        shutil.rmtree(work)
    expected = {"context": context, "windows": windows, "scored_tokens": count,
                "perplexity": float(np.exp(nll / count)),
                "second_half": {"windows": len(text_ids) // context, "scored_tokens": half_count,
                                "perplexity": float(np.exp(half_nll / half_count))},
                "prompt": prompt,
                "generated_ids": generated[start:], "completion": tokenizer.decode(generated[start:]),
                "text_ids": text_ids}
    with open(os.path.join(OUT, "tiny-chat.expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


def tiny_sentencepiece():
    """A SentencePiece BPE vocabulary (byte fallback, trained here as Llama's was: identity
    normalization, a dummy prefix, whitespace kept) written as convert_hf_to_gguf.py writes a
    llama vocabulary: pieces, scores, token types; no tensors. The expected ids and texts are
    sentencepiece's own."""
    import sentencepiece as spm
    work = tempfile.mkdtemp()
    try:
        corpus = os.path.join(work, "corpus.txt")
        text = open(os.path.join(HERE, "tiny-chat.sample.txt")).read()
        with open(corpus, "w") as f:
            f.write(text + "\n" + "The year 2024 saw 17 new moons and café prices rise.\n" * 3)
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(work, "sp"), vocab_size=420, model_type="bpe",
            byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
            remove_extra_whitespaces=False, add_dummy_prefix=True, num_threads=1,
            split_digits=True, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=os.path.join(work, "sp.model"))
    finally:
        shutil.rmtree(work)
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i)
                     else 6 if sp.is_byte(i) else 1)
    w = gguf.GGUFWriter(os.path.join(OUT, "tokenizer-sentencepiece.gguf"), arch="llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    samples = ["The quick brown fox", "Hello world", " leading space", "two  spaces", "café 1969 ☕",
               "line\nbreak", "don't stop", text]
    cases = [{"text": t, "ids": [sp.bos_id()] + sp.encode(t), "decoded": sp.decode(sp.encode(t))}
             for t in samples]
    with open(os.path.join(OUT, "tokenizer-sentencepiece.expected.json"), "w") as f:
        json.dump({"bos": sp.bos_id(), "eos": sp.eos_id(), "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny_llama()
    tiny_qwen2()
    tiny_chat()
    tiny_sentencepiece()
