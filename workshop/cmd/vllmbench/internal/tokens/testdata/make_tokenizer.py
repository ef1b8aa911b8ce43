"""Builds the tokenizer fixtures of vllmbench's tests with the Python `tokenizers` package (0.23.3):

    python3 make_tokenizer.py

writes, beside this script:

* gpt2/tokenizer.json: a tiny byte-level BPE (vocab 1000) as ByteLevelBPETokenizer makes it, GPT-2 style
  (ByteLevel pre-tokenizer with its regex, no special token added to a prompt);
* llama3/tokenizer.json: the same training with Llama 3's pre-tokenization (a Split regex with look-ahead,
  then ByteLevel without regex), ignore_merges, and a BOS token added by a TemplateProcessing post-processor;
* cases.json: what `tokenizers` itself answers for both: encodings (add_special_tokens=False) of hand-picked
  and random strings, decodings of random ids, vocab sizes and special-token counts.

The training text and the cases are generated from fixed seeds, so the output is reproducible.
"""

import json
import os
import random

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

WORDS = """the of and to in is you that it he was for on are as with his they at be this have from or one
had by word but not what all were we when your can said there use an each which she do how their if will up
other about out many then them these so some her would make like him into time has look two more write go see
number no way could people my than first water been call who oil its now find long down day did get come made
may part server token latency request model prompt stream benchmark queue decode prefill cache""".split()

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CASES = [
    "the server token", "hello world", "a  b", "a   b  c", "trailing  ", " leading", "x\n\ny", "line\nnext",
    "café naïve", "cafe\u0301", "日本語 😀", "it's they'll WE'D", "12345 678", "benchmark, stream! queue?",
    "\t tab", "<|endoftext|>the", "<|begin_of_text|>of", "  ", "a\r\nb", "ÿ\u00a0z", "the   \n  of", "",
]


def corpus(seed=16, lines=4000):
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 20))]
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 99999)))
        if rng.random() < 0.2:
            words.append(rng.choice(["café", "naïve", "日本語", "😀", "über"]))
        sep = rng.choice([" ", " ", " ", "  ", ", "])
        out.append(sep.join(words) + rng.choice([".", "!", "?", "", "\n", "\n\n"]))
    return out


def trained(pre, specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def gpt2():
    tok = trained(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def llama3():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok = trained(pre, ["<|begin_of_text|>", "<|end_of_text|>"])
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)]
    )
    return tok


def cases(tok, seed):
    rng = random.Random(seed)
    texts = list(CASES)
    for _ in range(300):  # the kind of text a random prompt is: random ids decoded
        texts.append(tok.decode([rng.randrange(tok.get_vocab_size()) for _ in range(rng.randint(1, 40))]))
    decode = []
    for _ in range(100):
        ids = [rng.randrange(tok.get_vocab_size()) for _ in range(rng.randint(1, 40))]
        decode.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False)})
    return {
        "vocab_size": tok.get_vocab_size(with_added_tokens=False),
        "num_special_tokens_to_add": tok.post_processor.num_special_tokens_to_add(False),
        "encode": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts],
        "decode": decode,
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for name, tok, seed in (("gpt2", gpt2(), 1), ("llama3", llama3(), 2)):
        os.makedirs(os.path.join(here, name), exist_ok=True)
        tok.save(os.path.join(here, name, "tokenizer.json"))
        out[name] = cases(tok, seed)
    with open(os.path.join(here, "cases.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
