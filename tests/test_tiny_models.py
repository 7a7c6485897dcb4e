"""tests/tiny_models.py: scripted tiny GGUFs load in llama.cpp and write their script through wafer's engine."""

from __future__ import annotations

import threading

import pytest
from tiny_models import (
    FAMILIES,
    PROMPT_END,
    PROMPT_END_NO_THINK,
    SMOLLM2,
    TEMPLATES,
    build_tiny_model,
)

from wafer.chat.template import ChatTemplate
from wafer.engine.engine import Engine, EngineConfig
from wafer.engine.events import ChoiceDelta, RequestDone, RequestFailed
from wafer.engine.llama import LlamaModel
from wafer.engine.sampler import SamplingParams
from wafer.engine.sequence import GenerationParams

pytestmark = pytest.mark.skipif(not SMOLLM2.exists(), reason="needs SmolLM2 (wafer pull smollm2-135m) for its tokenizer")

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]

# family -> (script, generated text); each script starts with the family's last prompt token
SCRIPTS = {
    "qwen3": (["\n", "<think>", "Let", " me", " think", "</think>", "Hello", "<|im_end|>"], "<think>Let me think</think>Hello"),
    "deepseek_r1": (["\n", "Let", " me", " think", "</think>", "Hello"], "Let me think</think>Hello"),
    "glm": (["<|assistant|>", "\n", "<think>", "Thinking", "</think>", "Hello", "<|user|>"], "\n<think>Thinking</think>Hello"),
    "gpt_oss": (["istant", "<|channel|>", "final", "<|message|>", "Hello", "<|return|>"], "<|channel|>final<|message|>Hello"),
}
# text-like tokens (rendered in generated text) and control tokens (rendered only as special pieces)
TEXT_TOKENS = {"qwen3": ["<think>", "</think>"], "deepseek_r1": ["<think>", "</think>"], "glm": ["<think>", "</think>"],
               # llama.cpp turns these Harmony tokens into USER_DEFINED at load (and drops <|end|> from EOG)
               "gpt_oss": ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>"]}
CONTROL_TOKENS = {"qwen3": ["<|im_start|>", "<|im_end|>"],
                  "deepseek_r1": ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
                  "glm": ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>"],
                  "gpt_oss": ["<|startoftext|>", "<|return|>", "<|call|>"]}
EOG = {"qwen3": ["<|im_end|>"], "deepseek_r1": ["<｜end▁of▁sentence｜>"], "glm": ["<|endoftext|>", "<|user|>"],
       "gpt_oss": ["<|return|>", "<|call|>"]}
# SmolLM2's own end-of-generation tokens stay in every family's vocabulary
SMOLLM2_EOG = ["<|endoftext|>", "<|im_end|>", "<reponame>"]


def token(model: LlamaModel, text: str) -> int:
    ids = model.tokenize(text, add_special=False, parse_special=True)
    assert len(ids) == 1, (text, ids)
    return ids[0]


def render(model: LlamaModel, messages=MESSAGES, **kwargs) -> list[int]:
    tpl = ChatTemplate(model.metadata["tokenizer.chat_template"], model.token_text(model.bos_id), model.token_text(model.eos_id))
    return model.tokenize(tpl.render(messages, add_generation_prompt=True, **kwargs), add_special=False, parse_special=True)


def generate(engine: Engine, prompt: list[int], max_new_tokens: int = 40) -> tuple[str, str | None, list[int]]:
    text, ids, finish, done = [], [], [], threading.Event()

    def sink(events):
        for e in events:
            if isinstance(e, ChoiceDelta):
                text.append(e.text)
                ids.extend(e.token_ids)
                if e.finish_reason:
                    finish.append(e.finish_reason)
            elif isinstance(e, (RequestDone, RequestFailed)):
                assert not isinstance(e, RequestFailed), e
                done.set()

    params = GenerationParams(sampling=SamplingParams(temperature=0), max_new_tokens=max_new_tokens)
    engine.submit(prompt, params, sink)
    assert done.wait(30)
    return "".join(text), (finish or [None])[-1], ids


@pytest.fixture
def engine_for(tmp_path):
    engines = []

    def make(family, script, **kwargs) -> Engine:
        path = build_tiny_model(tmp_path / f"{family}.gguf", family, script, **kwargs)
        engines.append(Engine(str(path), EngineConfig(parallel=2, ctx_size=2048, kv_cells=4096, prefix_cache=False)))
        return engines[-1]

    yield make
    for e in engines:
        e.shutdown()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_writes_its_script(engine_for, family):
    script, expected = SCRIPTS[family]
    engine = engine_for(family, script)
    m = engine.model
    assert m.metadata["general.name"] == f"tiny-{family}"
    assert m.metadata["general.architecture"] == "llama" and m.n_ctx_train == 4096
    assert m.metadata["tokenizer.chat_template"] == TEMPLATES[family]

    prompt = render(m)
    assert m.token_text(prompt[-1]) == PROMPT_END[family] == script[0]
    if family == "deepseek_r1":
        assert prompt[0] == m.bos_id and m.add_bos
    text, finish, ids = generate(engine, prompt)
    assert text == expected
    assert finish == "stop"
    assert [m.token_text(i) for i in ids] == [t for t in script[1:] if not m.eog[token(m, t)]]  # the EOG is not output

    eog = {m.token_text(i) for i in m.eog_ids}
    assert eog == set(EOG[family]) | set(SMOLLM2_EOG)
    assert m.token_text(m.eos_id) == EOG[family][0]
    for t in TEXT_TOKENS[family]:
        assert m.pieces[token(m, t)] == t.encode()
    for t in CONTROL_TOKENS[family]:
        assert m.pieces[token(m, t)] == b"" and m.special_pieces[token(m, t)] == t.encode()


def test_enable_thinking_false_and_several_chains(engine_for):
    engine = engine_for("qwen3", [["\n", "<think>", "Thinking", "</think>", "A"], ["\n\n", "B"]])
    m = engine.model
    prompt = render(m, enable_thinking=False)
    assert m.token_text(prompt[-1]) == PROMPT_END_NO_THINK["qwen3"]
    assert generate(engine, prompt) == ("B", "stop", [token(m, "B")])
    assert generate(engine, render(m))[:2] == ("<think>Thinking</think>A", "stop")


def test_no_script_ends_at_once_and_loops_run_to_length(engine_for):
    engine = engine_for("glm", None)
    m = engine.model
    assert m.token_text(render(m, enable_thinking=False)[-1]) == PROMPT_END_NO_THINK["glm"]
    assert generate(engine, render(m)) == ("", "stop", [])
    engine = engine_for("deepseek_r1", {"\n": "a", "a": "b", "b": "a"})
    assert generate(engine, render(engine.model), max_new_tokens=5)[:2] == ("ababa", "length")


def test_script_errors(tmp_path):
    with pytest.raises(ValueError, match="not one token"):
        build_tiny_model(tmp_path / "x.gguf", "qwen3", ["\n", "Hello world"])
    with pytest.raises(ValueError, match="cannot branch"):
        build_tiny_model(tmp_path / "x.gguf", "qwen3", ["\n", "<think>", "\n", "Hello"])


def test_templates_keep_only_current_reasoning():
    history = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1", "reasoning_content": "R1", "thinking": "R1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2", "reasoning_content": "R2", "thinking": "R2"},
    ]
    r = lambda family, **kw: ChatTemplate(TEMPLATES[family]).render(history, add_generation_prompt=False, **kw)
    qwen = r("qwen3")
    assert "R1" not in qwen and "<|im_start|>assistant\nA1<|im_end|>" in qwen
    assert qwen.endswith("<|im_start|>assistant\n<think>\nR2\n</think>\n\nA2<|im_end|>\n")
    glm = r("glm")
    assert glm.startswith("[gMASK]<sop><|user|>\nQ1<|assistant|>\n<think></think>\nA1<|user|>")
    assert glm.endswith("<|assistant|>\n<think>R2</think>\nA2")
    assert "<think>R1</think>" in r("glm", clear_thinking=False)
    ds = ChatTemplate(TEMPLATES["deepseek_r1"], "<BOS>").render(
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>R</think>A"}], add_generation_prompt=True)
    assert ds == "<BOS><｜User｜>Q<｜Assistant｜>A<｜end▁of▁sentence｜><｜Assistant｜><think>\n"
    oss = r("gpt_oss")
    assert "R1" not in oss and "Reasoning: medium" in oss
    assert oss.endswith("<|start|>assistant<|channel|>analysis<|message|>R2<|end|><|start|>assistant<|channel|>final<|message|>A2<|return|>")
    assert "Reasoning: high" in r("gpt_oss", reasoning_effort="high")
