"""Tiny GGUF "reasoning models" that follow a script: deterministic test doubles for llama.cpp.

``build_tiny_model(path, family, script)`` writes a GGUF that llama.cpp loads as an ordinary
``llama`` model (1 block, 64-wide, 4 heads, context 4096) with SmolLM2's BPE tokenizer plus the
special tokens of a model family (Qwen3, DeepSeek-R1-Distill, GLM-4.5, gpt-oss) and a faithful,
compact version of that family's chat template. At temperature 0 the model writes the script.

The bigram trick. Every attention and FFN weight is zero, so both sublayers add nothing and the
residual stream at the last layer is just the token embedding of the *current* token. Each
"state" token (one that has a scripted successor) gets a one-hot embedding on its own dimension
``d``; every other token shares dimension 0. The final RMSNorm (weight 1) scales a one-hot vector
to ``sqrt(n_embd)`` on that dimension, and ``output.weight[successor, d] = 30`` makes the
successor's logit ~240 while every other logit is 0. Dimension 0 leads to the family's EOS, so
an unscripted token (or the script's last token) ends generation. Consequences:

* Only the last prompt token matters (``PROMPT_END`` lists it per family; ``PROMPT_END_NO_THINK``
  with ``enable_thinking=False``), and a token has one successor: a bigram machine cannot branch.
  Where the same text must be followed by different tokens, spell it with other tokens (``"\\n"``
  vs ``"\\n\\n"``, ``"assistant"`` vs ``"ass"`` + ``"istant"``).
* A script may loop (``["a", "b", "a"]``): generation then runs to ``max_new_tokens``.
* The embedding grows past 64 (in steps of 64) when a script has 64 or more states.

Template variables follow the real templates: reasoning of history turns is read from
``message.reasoning_content`` (Qwen3, GLM) or ``message.thinking`` (gpt-oss), not ``reasoning``.

llama.cpp decides end-of-generation partly by token text: in every family ``<|endoftext|>``,
``<|im_end|>`` and ``<reponame>`` (SmolLM2's FIM token) are EOG besides the family's own, and for
gpt_oss it turns ``<|start|>``, ``<|end|>``, ``<|message|>``, ``<|channel|>``, ``<|constrain|>`` into
USER_DEFINED (rendered in text; ``<|end|>`` not EOG), leaving ``<|return|>`` and ``<|call|>`` EOG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import gguf
import numpy as np

from wafer.models.cache import default_cache_dir

# the tokenizer donor, in wafer's model cache ($WAFER_CACHE_DIR, $XDG_CACHE_HOME/wafer or ~/.cache/wafer):
# the pulled SmolLM2, whichever layout `wafer pull` chose for it
_SMOLLM2_DIR = default_cache_dir() / "models" / "smollm2-135m"
SMOLLM2 = min(_SMOLLM2_DIR.glob("SmolLM2-135M-Instruct.*.gguf"), default=_SMOLLM2_DIR / "SmolLM2-135M-Instruct.gguf")
CONTROL, USER_DEFINED, NORMAL = int(gguf.TokenType.CONTROL), int(gguf.TokenType.USER_DEFINED), int(gguf.TokenType.NORMAL)
LOGIT = 30.0  # output weight of a scripted transition (logit = LOGIT * sqrt(n_embd))

QWEN3_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(last_query_index=messages|length - 1, found=false) %}"
    "{%- for message in messages[::-1] %}{%- if not ns.found and message.role == 'user' %}"
    "{%- set ns.found = true %}{%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- set content = message.content if message.content is string else '' %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}{%- set reasoning_content = message.reasoning_content %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

DEEPSEEK_R1_TEMPLATE = (
    "{%- set ns = namespace(system_prompt='') %}"
    "{%- for message in messages %}{%- if message.role == 'system' %}{%- set ns.system_prompt = message.content %}{%- endif %}{%- endfor %}"
    "{{- bos_token + ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' %}{{- '<｜User｜>' + message.content }}"
    "{%- elif message.role == 'assistant' and message.content is not none %}"
    "{%- set content = message.content %}"
    "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    "{{- '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<｜Assistant｜><think>\\n' }}{%- endif %}"
)

GLM_TEMPLATE = (
    "{{- '[gMASK]<sop>' }}"
    "{%- set ns = namespace(last_user_index=-1) %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last_user_index = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for m in messages %}"
    "{%- set content = m.content if m.content is string else '' %}"
    "{%- if m.role == 'system' %}{{- '<|system|>\\n' + content }}"
    "{%- elif m.role == 'user' %}{{- '<|user|>\\n' + content }}"
    "{%- elif m.role == 'assistant' %}"
    "{%- set reasoning_content = '' %}"
    "{%- if m.reasoning_content is string %}{%- set reasoning_content = m.reasoning_content %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if ((clear_thinking is defined and not clear_thinking) or loop.index0 > ns.last_user_index) and reasoning_content %}"
    "{{- '<|assistant|>\\n<think>' + reasoning_content.strip() + '</think>' }}"
    "{%- else %}{{- '<|assistant|>\\n<think></think>' }}{%- endif %}"
    "{%- if content.strip() %}{{- '\\n' + content.strip() }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>' }}"
    "{%- if enable_thinking is defined and not enable_thinking %}{{- '\\n<think></think>' }}{%- endif %}"
    "{%- endif %}"
)

GPT_OSS_TEMPLATE = (
    "{%- if reasoning_effort is not defined %}{%- set reasoning_effort = 'medium' %}{%- endif %}"
    "{{- '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\\n'"
    " + 'Knowledge cutoff: 2024-06\\n\\nReasoning: ' + reasoning_effort + '\\n\\n'"
    " + '# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>' }}"
    "{%- if messages and messages[0].role in ['system', 'developer'] %}"
    "{{- '<|start|>developer<|message|># Instructions\\n\\n' + messages[0].content + '\\n\\n<|end|>' }}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message.role == 'user' %}{{- '<|start|>user<|message|>' + message.content + '<|end|>' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- if loop.last and not add_generation_prompt %}"
    "{%- if message.thinking is string %}{{- '<|start|>assistant<|channel|>analysis<|message|>' + message.thinking + '<|end|>' }}{%- endif %}"
    "{{- '<|start|>assistant<|channel|>final<|message|>' + message.content + '<|return|>' }}"
    "{%- else %}{{- '<|start|>assistant<|channel|>final<|message|>' + message.content + '<|end|>' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}"
)


@dataclass(frozen=True)
class Family:
    template: str
    extra: tuple[tuple[str, int], ...]  # tokens appended to SmolLM2's vocabulary, with their type
    bos: str
    eos: str
    eot: str | None = None
    add_bos: bool = False


THINK = (("<think>", USER_DEFINED), ("</think>", USER_DEFINED))
FAMILIES: dict[str, Family] = {
    # SmolLM2 already has <|endoftext|> (0), <|im_start|> (1), <|im_end|> (2), all CONTROL
    "qwen3": Family(QWEN3_TEMPLATE, THINK, bos="<|endoftext|>", eos="<|im_end|>"),
    "deepseek_r1": Family(
        DEEPSEEK_R1_TEMPLATE,
        (("<｜begin▁of▁sentence｜>", CONTROL), ("<｜end▁of▁sentence｜>", CONTROL), ("<｜User｜>", CONTROL),
         ("<｜Assistant｜>", CONTROL), *THINK),
        bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>", add_bos=True,
    ),
    "glm": Family(
        GLM_TEMPLATE,
        (("[gMASK]", CONTROL), ("<sop>", CONTROL), ("<|system|>", CONTROL), ("<|user|>", CONTROL),
         ("<|assistant|>", CONTROL), *THINK),
        bos="[gMASK]", eos="<|endoftext|>", eot="<|user|>",
    ),
    "gpt_oss": Family(
        GPT_OSS_TEMPLATE,
        tuple((t, CONTROL) for t in ("<|startoftext|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>",
                                     "<|return|>", "<|call|>", "<|constrain|>")),
        bos="<|startoftext|>", eos="<|return|>",
    ),
}
TEMPLATES = {name: f.template for name, f in FAMILIES.items()}
#: The last token of each template's generation prompt (default variables) - a script's first piece.
PROMPT_END = {"qwen3": "\n", "deepseek_r1": "\n", "glm": "<|assistant|>", "gpt_oss": "istant"}
#: The same with ``enable_thinking=False`` (families whose template reads it).
PROMPT_END_NO_THINK = {"qwen3": "\n\n", "glm": "</think>"}

Piece = str | int
Script = Mapping[Piece, Piece] | Sequence[Piece] | Sequence[Sequence[Piece]] | None


@lru_cache(maxsize=1)
def _base_vocab() -> tuple[list[str], list[int], list[str]]:
    """SmolLM2's tokens (byte-level BPE text), token types and merges."""
    if not SMOLLM2.exists():
        raise FileNotFoundError(f"{SMOLLM2} is missing: run `wafer pull smollm2-135m` first")
    r = gguf.GGUFReader(SMOLLM2)
    f = r.fields
    return (list(f["tokenizer.ggml.tokens"].contents()), [int(t) for t in f["tokenizer.ggml.token_type"].contents()],
            list(f["tokenizer.ggml.merges"].contents()))


@lru_cache(maxsize=1)
def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character map (how byte-level BPE vocabularies spell bytes)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return out


def family_vocab(family: str) -> tuple[list[str], list[int]]:
    """Tokens and token types of a family: SmolLM2's plus the family's extra tokens appended.

    Tokens SmolLM2 already has (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, all CONTROL) are
    reused, not listed in ``Family.extra``."""
    tokens, types, _ = _base_vocab()
    tokens, types = list(tokens), list(types)
    for text, kind in FAMILIES[family].extra:
        if text in tokens:
            raise ValueError(f"{text!r} is already in SmolLM2's vocabulary")
        tokens.append(text)
        types.append(kind)
    return tokens, types


def token_id(tokens: list[str], types: list[int], piece: Piece) -> int:
    """The id of the one token whose text is ``piece`` (special tokens by text, others as bytes)."""
    if isinstance(piece, int):
        if not 0 <= piece < len(tokens):
            raise ValueError(f"token id {piece} is outside the vocabulary (0..{len(tokens) - 1})")
        return piece
    for i, t in enumerate(tokens):  # cheap enough: special tokens sit at both ends
        if types[i] != NORMAL and t == piece:
            return i
    bpe = "".join(_byte_chars()[b] for b in piece.encode("utf-8"))
    try:
        return tokens.index(bpe)
    except ValueError:
        raise ValueError(f"{piece!r} is not one token of the vocabulary (a script piece must be exactly one token)") from None


def _chains(script: Script) -> list[tuple[Piece, Piece]]:
    if script is None:
        return []
    if isinstance(script, Mapping):
        return list(script.items())
    if isinstance(script, str):
        raise TypeError("a script is a list of one-token pieces, not a string")
    items = list(script)
    if items and all(isinstance(c, (list, tuple)) for c in items):
        return [pair for chain in items for pair in pairwise(chain)]
    return list(pairwise(items))


def build_tiny_model(
    path: str | Path,
    family: str,
    script: Script = None,
    *,
    eos: Piece | None = None,
    context_length: int = 4096,
) -> Path:
    """Write a tiny ``family`` model to ``path`` that, greedily, continues its prompt with ``script``.

    ``family``: ``"qwen3"``, ``"deepseek_r1"``, ``"glm"`` or ``"gpt_oss"`` (see ``FAMILIES``).
    ``script``: one-token pieces (text, or token ids) in the order the model sees them, e.g.
    ``[PROMPT_END["qwen3"], "<think>", "Let", " me", " think", "</think>", "Hello", "<|im_end|>"]``:
    after ``"\\n"`` (the prompt's last token) the model writes ``<think>``, then ``Let``, ...
    Also accepted: a list of such chains, or a mapping ``{token: successor}``. ``None``: every
    token is followed by EOS. Any token without a scripted successor is followed by ``eos``
    (default: the family's EOS). Raises ValueError for a piece that is not exactly one token, and
    for a token given two different successors.

    Last prompt tokens (``PROMPT_END``; checked by tests/test_tiny_models.py): qwen3 ``"\\n"``
    (``"\\n\\n"`` with enable_thinking=False), deepseek_r1 ``"\\n"`` (after ``<think>``), glm
    ``"<|assistant|>"`` (``"</think>"`` with enable_thinking=False), gpt_oss ``"istant"``
    (SmolLM2 spells ``assistant`` as ``ass`` + ``istant``).
    """
    fam = FAMILIES[family]
    tokens, types = family_vocab(family)
    n_vocab = len(tokens)
    tid = {t: token_id(tokens, types, t) for t in {fam.bos, fam.eos, fam.eot} if t is not None}
    fallback = token_id(tokens, types, eos) if eos is not None else tid[fam.eos]

    nxt: dict[int, int] = {}
    for a, b in _chains(script):
        ia, ib = token_id(tokens, types, a), token_id(tokens, types, b)
        if nxt.get(ia, ib) != ib:
            raise ValueError(
                f"{tokens[ia]!r} is followed by both {tokens[nxt[ia]]!r} and {tokens[ib]!r}: a bigram "
                "machine cannot branch (spell one of them with other tokens)"
            )
        nxt[ia] = ib
    states = sorted(nxt)
    n_embd = 64 * (len(states) // 64 + 1)  # dimension 0 is "every other token"
    n_head, n_ff = 4, 64

    embd = np.zeros((n_vocab, n_embd), dtype=np.float16)
    embd[:, 0] = 1.0
    out = np.zeros((n_vocab, n_embd), dtype=np.float16)
    out[fallback, 0] = LOGIT
    for d, s in enumerate(states, start=1):
        embd[s, 0] = 0.0
        embd[s, d] = 1.0
        out[nxt[s], d] = LOGIT

    path = Path(path)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(f"tiny-{family}")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(1)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(_base_vocab()[2])
    w.add_bos_token_id(tid[fam.bos])
    w.add_eos_token_id(tid[fam.eos])
    if fam.eot is not None:
        w.add_eot_token_id(tid[fam.eot])
    w.add_unk_token_id(0)
    w.add_pad_token_id(tid[fam.eos])
    w.add_add_bos_token(fam.add_bos)
    w.add_chat_template(fam.template)

    ones = np.ones(n_embd, dtype=np.float32)
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("blk.0.attn_norm.weight", ones)
    for name in ("q", "k", "v", "output"):
        w.add_tensor(f"blk.0.attn_{name}.weight", np.zeros((n_embd, n_embd), np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", ones)
    w.add_tensor("blk.0.ffn_gate.weight", np.zeros((n_ff, n_embd), np.float32))  # numpy (rows, cols) = ggml {cols, rows}
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((n_ff, n_embd), np.float32))
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((n_embd, n_ff), np.float32))
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", out)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
