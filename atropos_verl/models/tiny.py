# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Build a tiny Qwen2 model and byte-level BPE tokenizer offline, deterministically from a seed.

The CPU demo, the tests and CI cannot download a model, so they build one here. Everything that loads it
(verl, vLLM, Atropos) goes through `AutoTokenizer`/`AutoModelForCausalLM` on a `model_type=qwen2` directory, and under
transformers 5 that always means `Qwen2Tokenizer`, which forces the Qwen2 pre-tokenizer (regex Split + ByteLevel, NFC).
The tokenizer built here uses exactly that pipeline, so the ids we write are the ids every consumer sees, and "\\n" is
one token (verl's Qwen ChatML handling requires it).

The defaults are the demo recipe: 256 byte symbols + 60 merges + 4 specials = 320 tokens, hidden 128, 2 layers,
566,656 parameters.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_SYSTEM_PROMPT",
    "QWEN2_PRETOKENIZE_REGEX",
    "SPECIAL_TOKENS",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "count_parameters",
    "default_merge_corpus",
    "learn_merges",
]

ENDOFTEXT, IM_START, IM_END, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"
# Order fixes the ids: they follow the byte symbols and the merges, as in Qwen2 (ids len(bpe)..len(bpe)+3).
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END, PAD)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer with the number only."

# Qwen2's published pre-tokenization regex: contractions, letter runs, single digits (so no digit merges exist),
# punctuation runs, newlines, whitespace. It must match what `Qwen2Tokenizer` installs, or ids would differ on reload.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# ChatML: one block per message, `<|im_end|>\n` after each turn, `<|im_start|>assistant\n` as the generation prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins ByteLevel uses for bytes 0..255 (GPT-2 scheme), indexed by byte value."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def _render_chatml(messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = False) -> str:
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def default_merge_corpus(num_examples: int = 200, *, seed: int = 0) -> list[str]:
    """ChatML two-digit addition dialogues (the demo task), so merges compress the template and system prompt words.

    Independent of the model seed on purpose: models built with different init seeds share one tokenizer.
    """
    rng = random.Random(seed)
    corpus = []
    for _ in range(num_examples):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        messages = [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": f"{a}+{b}="},
            {"role": "assistant", "content": str(a + b)},
        ]
        corpus.append(_render_chatml(messages))
    return corpus


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def learn_merges(corpus: Iterable[str], num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE merge learning over the corpus, pre-tokenized exactly as the tokenizer will pre-tokenize it.

    Written out (rather than using `BpeTrainer`) to control the id layout and make ties explicit: the most frequent
    pair wins, equal counts go to the lexicographically smallest pair. Stops early when every word is one symbol.
    The corpus is plain text: the spelling of the special tokens is learned like any other text. Those few merges are
    inert at encode time (specials are matched first), but they are part of the demo recipe's 320-token vocabulary,
    which the default corpus reproduces exactly (60 merges, then nothing is left to merge).
    """
    import unicodedata

    pre_tokenizer = _pre_tokenizer()
    words: Counter[tuple[str, ...]] = Counter()
    for text in corpus:
        for piece, _ in pre_tokenizer.pre_tokenize_str(unicodedata.normalize("NFC", text)):
            words[tuple(piece)] += 1

    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, freq in words.items():
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] += freq
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, freq in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += freq
        words = merged
    return merges


def build_tiny_tokenizer(
    *, num_merges: int = 60, merge_corpus: Iterable[str] | None = None, model_max_length: int = 128
) -> PreTrainedTokenizerFast:
    """Byte-level BPE with the Qwen2 pipeline: ids 0..255 are bytes, then merges, then the 4 ChatML specials."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    corpus = default_merge_corpus() if merge_corpus is None else list(merge_corpus)
    merges = learn_merges(corpus, num_merges)
    vocab = {sym: i for i, sym in enumerate(_byte_symbols())}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))  # two merges can yield one string ("a"+"bc", "ab"+"c"): one id

    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        model_max_length=model_max_length,
        chat_template=CHATML_TEMPLATE,
        clean_up_tokenization_spaces=False,
        padding_side="left",
    )


def count_parameters(model_or_dir: Any) -> int:
    """Unique parameters of a model, or of a saved model directory (read from the safetensors headers, no load).

    A tied lm_head is counted once either way (it is not stored separately).
    """
    if isinstance(model_or_dir, str | Path):
        from safetensors import safe_open

        total = 0
        for file in sorted(Path(model_or_dir).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    total += math.prod(f.get_slice(name).get_shape())
        return total
    return sum(p.numel() for p in model_or_dir.parameters())


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 128,
    intermediate_size: int = 512,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 4,
    max_position_embeddings: int = 128,
    tie_word_embeddings: bool = True,
    num_merges: int = 60,
    merge_corpus: Iterable[str] | None = None,
    rope_theta: float = 10000.0,
) -> Path:
    """Write a random-init Qwen2 (fp32 safetensors), its tokenizer and a generation config to `out_dir`.

    Same arguments → byte-identical files. The init RNG is forked, so the caller's torch RNG state is untouched.
    `vocab_size` is set to `len(tokenizer)`: a larger embedding would let the model sample ids the tokenizer lacks.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(
        num_merges=num_merges, merge_corpus=merge_corpus, model_max_length=max_position_embeddings
    )
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(PAD)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id)

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
