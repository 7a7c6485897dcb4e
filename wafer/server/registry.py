"""The models one server process serves: an engine and a chat template per model, plus aliases."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from ..chat.reasoning import EFFORT_BUDGETS, Family, detect_family
from ..chat.tools import CLOSE, OPEN
from ..chat.template import ChatTemplate, template_for_model
from ..engine.engine import Engine, EngineConfig
from ..models.catalogue import Recommended, recommended_sampling
from ..models.cerebras import CEREBRAS_MODEL_IDS
from .model_card import ModelCard
from .tiers import QueueTimes


@dataclass
class ServedModel:
    id: str
    path: str
    engine: Engine
    template: ChatTemplate
    created: int = field(default_factory=lambda: int(time.time()))
    fingerprint: str = ""
    tool_tokens: dict[str, int] | None = None  # <tool_call>/</tool_call> when each is one special token
    reasoning: Family | None = None  # the reasoning family of the chat template, if any
    source_repo: str | None = None  # the Hugging Face repo the GGUF came from, when known
    queue_times: QueueTimes = field(default_factory=QueueTimes)  # of recent requests (queue_threshold)
    recommended: Recommended = field(default_factory=Recommended)  # the model's recommended sampling settings
    defaults: dict[str, float] = field(default_factory=dict)  # sampling parameters filled in when a request omits them

    @classmethod
    def load(cls, model_id: str, path: str, config: EngineConfig, chat_template: str | None = None,
             source_repo: str | None = None) -> "ServedModel":
        engine = Engine(path, config, model_id)
        m = engine.model
        template = template_for_model(m.metadata, m.token_text(m.bos_id), m.token_text(m.eos_id), chat_template)
        threading.Thread(target=engine.grammars.warm, daemon=True).start()
        return cls(id=model_id, path=path, engine=engine, template=template, tool_tokens=_tool_tokens(engine),
                   reasoning=detect_family(template.source), source_repo=source_repo,
                   recommended=recommended_sampling(model_id, path, m.metadata))

    @cached_property
    def card(self) -> ModelCard:
        """What model discovery says about this model."""
        return ModelCard.of(self)

    @property
    def has_developer_role(self) -> bool:
        """Whether the chat template renders developer messages itself (else they are sent as system)."""
        return "developer" in self.template.source


def _tool_tokens(engine: Engine) -> dict[str, int] | None:
    ids = {}
    for text in (OPEN, CLOSE):
        toks = engine.tokenize(text, add_special=False, parse_special=True)
        if len(toks) != 1 or engine.model.pieces[toks[0]] != text.encode():
            return None
        ids[text] = toks[0]
    return ids


@dataclass
class ServeOptions:
    """Server-wide request handling choices (``wafer serve`` flags)."""

    reasoning_budgets: dict[str, int] = field(default_factory=lambda: dict(EFFORT_BUDGETS))
    accept_reasoning_content: bool = False  # map messages' reasoning_content to reasoning instead of a 400
    speculate_ngram: bool = False  # requests without a prediction draft from their prompt
    draft_max: int = 32  # longest draft verified in one step (--draft-max)
    api_version: int = 2  # behaviour version of requests without X-Cerebras-Version-Patch (--api-version)
    dedicated: bool = False  # a dedicated endpoint: service_tier "priority" is served (--dedicated-endpoint)
    model_sampling_defaults: bool = True  # omitted temperature/top_p: the model's recommendation (else the API's 1.0)


class Registry:
    def __init__(self, options: ServeOptions | None = None) -> None:
        self.models: dict[str, ServedModel] = {}
        self.aliases: dict[str, str] = {}
        self.options = options or ServeOptions()

    def add(self, model: ServedModel) -> None:
        if model.id in self.models or model.id in self.aliases:
            raise ValueError(f"model id {model.id!r} is served twice")
        model.defaults = model.recommended.api() if self.options.model_sampling_defaults else {}
        self.models[model.id] = model

    def alias(self, alias: str, target: str) -> None:
        if target not in self.models:
            raise ValueError(f"--alias {alias}={target}: no served model has the id {target!r}")
        if alias in self.models:
            raise ValueError(f"--alias {alias}: a served model already has that id")
        self.aliases[alias] = target

    def cerebras_ids(self, target: str) -> list[str]:
        """Make every Cerebras model id that is not served or aliased yet answer on ``target``; the ids added."""
        if target not in self.models:
            raise ValueError(f"--cerebras-ids {target}: no served model has the id {target!r}")
        added = [i for i in CEREBRAS_MODEL_IDS if i not in self.models and i not in self.aliases]
        for i in added:
            self.aliases[i] = target
        return added

    def get(self, model_id: str) -> ServedModel | None:
        return self.models.get(self.aliases.get(model_id, model_id))

    def ids(self) -> list[tuple[str, ServedModel]]:
        out = [(k, m) for k, m in self.models.items()]
        out += [(a, self.models[t]) for a, t in self.aliases.items()]
        return out

    def shutdown(self) -> None:
        for m in self.models.values():
            m.engine.shutdown()
