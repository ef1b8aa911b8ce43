"""Writes a tiny Llama-architecture model with random weights and an offline-built tokenizer into a folder.

    python make_tiny_model.py OUT_DIR

No model hub is involved: the tokenizer is trained here (a byte-level BPE from the `tokenizers` library on a
generated corpus) and the weights are random (seeded, so two runs write the same model). It is a real model for
vLLM all the same: `vllm serve OUT_DIR` loads it, answers /v1/completions and /v1/chat/completions (the chat
template is in tokenizer_config.json) and runs in milliseconds per token on two CPU cores. Its output is
noise; the tests use it for timings and token counts, never for text.
"""

import json
import os
import random
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB_SIZE = 1024
CONTEXT = 512  # max_position_embeddings: a longer prompt is rejected by vLLM

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def corpus(seed: int):
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "an", "el", "or", "us", "in", "th", "qu"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(2000)]
    words += "the of and to in is that for it as with was on be by this are from at or".split()
    for _ in range(4000):
        yield " ".join(rng.choice(words) for _ in range(rng.randint(5, 30))) + rng.choice([".", "?", "!", ","])


def build_tokenizer(out_dir: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(7), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=CONTEXT,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def main() -> None:
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    torch.manual_seed(7)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir, safe_serialization=True)
    model.generation_config.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "otelcol-vllm-tiny-model.json"), "w") as f:
        json.dump({"vocab_size": len(tokenizer), "context": CONTEXT, "parameters": model.num_parameters()}, f)


if __name__ == "__main__":
    main()
