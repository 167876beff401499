"""Tiny random checkpoints that name the same kind of model in different ways.

Writes Fixtures/naming/:
  llama-causal/   LlamaForCausalLM: `model.layers.#...`, `model.embed_tokens.weight`, `lm_head.weight`
  llama-base/     its `.model` saved alone (as AutoModel does): `layers.#...`, `embed_tokens.weight`
  llama-wrapped/  the same weights under `model.language_model.` (transformers 4.52+ multimodal wrappers)
  bert/           BertModel: `embeddings.*`, `encoder.layer.#.attention.self.query.weight`
  bert-mlm/       BertForMaskedLM with the same encoder under `bert.`
  sentence-transformers/  modules.json, 0_Transformer/ (the BertModel), 1_Pooling/config.json
Needs torch and transformers. Run from the repository root: python3 Fixtures/make_naming_fixtures.py
"""

import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM, BertModel, LlamaConfig, LlamaForCausalLM

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "naming")


def write(folder, model, tensors=None):
    path = os.path.join(HERE, folder)
    shutil.rmtree(path, ignore_errors=True)
    model.save_pretrained(path, safe_serialization=True)
    if tensors is not None:
        save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    for extra in ["generation_config.json"]:
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))
    return path


def main():
    torch.manual_seed(0)
    llama = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                        tie_word_embeddings=False)
    causal = LlamaForCausalLM(llama).eval()
    write("llama-causal", causal)
    write("llama-base", causal.model)
    wrapped = {"model.language_model." + k[len("model."):] if k.startswith("model.") else k: v.contiguous()
               for k, v in causal.state_dict().items()}
    write("llama-wrapped", causal, wrapped)

    bert = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=32, max_position_embeddings=32, type_vocab_size=2)
    base = BertModel(bert, add_pooling_layer=True).eval()
    write("bert", base)
    mlm = BertForMaskedLM(bert).eval()
    mlm.bert.load_state_dict(base.state_dict(), strict=False)
    write("bert-mlm", mlm)

    st = os.path.join(HERE, "sentence-transformers")
    shutil.rmtree(st, ignore_errors=True)
    base.save_pretrained(os.path.join(st, "0_Transformer"), safe_serialization=True)
    os.makedirs(os.path.join(st, "1_Pooling"))
    with open(os.path.join(st, "1_Pooling", "config.json"), "w") as out:
        json.dump({"word_embedding_dimension": 16, "pooling_mode_mean_tokens": True}, out, indent=2)
    with open(os.path.join(st, "modules.json"), "w") as out:
        json.dump([
            {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ], out, indent=2)


if __name__ == "__main__":
    main()
