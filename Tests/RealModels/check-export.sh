#!/usr/bin/env bash
# Checks `qconvert --layout mlx|gguf` on SmolLM2-135M (from ../shared/models/fetch.sh):
# - MLX BITS-bit gGROUP (4 and 64 unless BITS and GROUP say otherwise; 2, 3, 4, 5, 6, 8): every
#   quantized tensor against `mlx_lm.convert -q` (packed words, scales and biases, and the
#   per-tensor max abs difference of the dequantized weights), then `mlx_lm generate` on our output.
#   MLX_ONLY=1 skips the GGUF checks.
# - GGUF Q8_0 and Q4_K: read with the `gguf` package; `gguf.quants.dequantize` of every tensor
#   against the source weights (after llama.cpp's Q/K permutation), within the block type's error.
#
# Needs: pip install "mlx[cpu]" mlx-lm gguf numpy safetensors
# mlx on the Linux CPU is slow at generation; LD_PRELOAD of an OpenBLAS may help.
# Usage: Tests/RealModels/check-export.sh     (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=$MODELS/smollm2-135m-instruct-hf
BIN=.build/release/qconvert
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

BITS=${BITS:-4}
GROUP=${GROUP:-64}
echo "== MLX $BITS-bit g$GROUP"
"$BIN" "$MODEL" -o "$WORK/ours-mlx" --layout mlx --bits "$BITS" --group-size "$GROUP" --quiet
"$PY" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$WORK/ref-mlx" -q --q-bits "$BITS" --q-group-size "$GROUP" >/dev/null
"$PY" - "$WORK/ours-mlx" "$WORK/ref-mlx" <<'PYEOF'
import json, os, sys
import mlx.core as mx
ours_dir, ref_dir = sys.argv[1], sys.argv[2]
ours = mx.load(os.path.join(ours_dir, "model.safetensors"))
ref = mx.load(os.path.join(ref_dir, "model.safetensors"))
missing = sorted(set(ref) - set(ours))
extra = sorted(set(ours) - set(ref))
assert not missing and not extra, f"tensor sets differ: missing {missing[:5]}, extra {extra[:5]}"
q_ours = json.load(open(os.path.join(ours_dir, "config.json")))["quantization"]
q_ref = json.load(open(os.path.join(ref_dir, "config.json")))["quantization"]
assert q_ours == q_ref, f"quantization config differs: {q_ours} vs {q_ref}"
worst, exact, total = 0.0, 0, 0
for name in sorted(ref):
    if not name.endswith(".scales"):
        continue
    module = name[: -len(".scales")]
    w = [d[module + ".weight"] for d in (ours, ref)]
    s = [d[module + ".scales"] for d in (ours, ref)]
    b = [d[module + ".biases"] for d in (ours, ref)]
    total += 1
    if mx.array_equal(w[0], w[1]) and mx.array_equal(s[0], s[1]) and mx.array_equal(b[0], b[1]):
        exact += 1
    deq = [mx.dequantize(w[i], s[i], b[i], group_size=q_ref["group_size"], bits=q_ref["bits"]) for i in (0, 1)]
    diff = mx.max(mx.abs(deq[0].astype(mx.float32) - deq[1].astype(mx.float32))).item()
    worst = max(worst, diff)
    if diff > 0:
        print(f"  {module}: max abs diff {diff:.3g}")
for name in ref:
    if name.endswith((".weight", ".bias")) and name[: name.rfind(".")] + ".scales" not in ref:
        assert mx.array_equal(ours[name], ref[name]), f"unquantized {name} differs"
print(f"  {exact}/{total} quantized modules bit-identical to mlx_lm.convert; worst dequantized diff {worst:.3g}")
assert worst < 1e-2, "dequantized weights differ from mlx_lm.convert"
PYEOF
"$PY" -m mlx_lm generate --model "$WORK/ours-mlx" --prompt "The capital of France is" --max-tokens 30
if [ -n "${PERPLEXITY_TEXT:-}" ]; then
  .build/release/qinspect "$WORK/ours-mlx" --perplexity "$PERPLEXITY_TEXT" --windows 8 --format json 2>/dev/null \
    | "$PY" -c 'import json,sys; p=json.load(sys.stdin)[0]["perplexity"]; print("  our evaluator on the MLX folder: perplexity %.3f over %d tokens" % (p["perplexity"], p["scored_tokens"]))'
fi
[ -n "${MLX_ONLY:-}" ] && { echo "check-export: MLX checks passed"; exit 0; }

for TYPE in q8_0 q4_k; do
  echo "== GGUF $TYPE"
  "$BIN" "$MODEL" -o "$WORK/ours-$TYPE.gguf" --layout gguf --gguf-type "$TYPE"
  "$PY" - "$MODEL" "$WORK/ours-$TYPE.gguf" <<'PYEOF'
import json, os, sys
import numpy as np
import gguf
from safetensors import safe_open
model_dir, path = sys.argv[1], sys.argv[2]
config = json.load(open(os.path.join(model_dir, "config.json")))
heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
layer_names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
def gguf_name(name):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    return f"blk.{parts[2]}.{layer_names['.'.join(parts[3:-1])]}.{parts[-1]}"
def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
reader = gguf.GGUFReader(path)
assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "llama"
tensors = {t.name: t for t in reader.tensors}
worst_rel = 0.0
with safe_open(os.path.join(model_dir, "model.safetensors"), "np") as f:
    for name in f.keys():
        if name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue
        src = f.get_tensor(name).astype(np.float32)
        if "q_proj" in name:
            src = permute(src, heads)
        if "k_proj" in name:
            src = permute(src, kv_heads)
        t = tensors[gguf_name(name)]
        deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(src.shape)
        rel = float(np.abs(deq - src).max() / max(np.abs(src).max(), 1e-12))
        worst_rel = max(worst_rel, rel)
        if t.tensor_type in (gguf.GGMLQuantizationType.F32,):
            assert np.array_equal(deq, src), f"{name} not copied exactly"
print(f"  {len(tensors)} tensors read by the gguf package; worst error relative to tensor absmax {worst_rel:.3g}")
assert worst_rel < 0.2, "dequantized GGUF tensors far from the source"
PYEOF
done
echo "check-export: all checks passed"
