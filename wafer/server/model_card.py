"""What model discovery says about a served model, read from the loaded model itself.

``ModelCard.of(served)`` collects it once per model (name and tokenizer from the GGUF metadata,
quantization from the file, context from the engine, the chat template's instruction format and
reasoning family, the Hugging Face repo of a catalogue or Hugging Face model); ``default``,
``openrouter``, ``huggingface`` and ``public`` write it in the four shapes of ``/v1/models`` and
``/public/v1/models``. Every model can call tools (natively or through wafer's fallback prompt) and
produce JSON under a grammar; none takes images. Self-hosted tokens cost nothing: prices are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.cache import gguf_quant
from ..models.catalogue import get_entry
from ..protocol import model_info as M
from ..protocol import responses as R

OWNER = "wafer"

#: the sampling parameters every served model takes (OpenRouter's names)
SAMPLING = ("temperature", "top_p", "stop", "seed", "max_tokens", "frequency_penalty", "presence_penalty",
            "logit_bias", "logprobs", "top_logprobs")
#: chat template markers -> instruction format
INSTRUCT_TYPES = (("<|channel|>", "harmony"), ("<|im_start|>", "chatml"), ("<|start_header_id|>", "llama3"),
                  ("<start_of_turn>", "gemma"), ("[INST]", "mistral"))


@dataclass(frozen=True)
class ModelCard:
    name: str
    description: str
    created: int
    context_length: int  # tokens per request (prompt + output)
    quantization: str | None
    hugging_face_id: str | None
    tokenizer: str
    instruct_type: str | None
    reasoning: bool

    @property
    def max_output(self) -> int:
        """At least one prompt token; the rest of the context may be output."""
        return max(1, self.context_length - 1)

    @classmethod
    def of(cls, served) -> "ModelCard":
        """The card of a ``registry.ServedModel`` (which keeps it: ``served.card``)."""
        meta = served.engine.model.metadata
        entry = get_entry(served.id)
        quant = gguf_quant(served.path)
        repo = entry.hf_repo if entry else served.source_repo
        name = (repo.rsplit("/", 1)[-1] if repo else None) or meta.get("general.name") or served.id
        source = served.template.source
        return cls(
            name=name,
            description=entry.description if entry else f"{name} ({quant or 'GGUF'}), served by wafer",
            created=served.created,
            context_length=served.engine.ctx_size,
            quantization=quant,
            hugging_face_id=repo,
            tokenizer=meta.get("tokenizer.ggml.pre") or meta.get("tokenizer.ggml.model") or "unknown",
            instruct_type=next((kind for mark, kind in INSTRUCT_TYPES if mark in source), None),
            reasoning=served.reasoning is not None,
        )

    # -- the four shapes ----------------------------------------------------------------------
    def default(self, model_id: str) -> R.Model:
        return R.Model(id=model_id, created=self.created, owned_by=OWNER)

    def openrouter(self, model_id: str) -> M.OpenRouterModel:
        features = ["tools", "json_mode", "structured_outputs"] + (["reasoning"] if self.reasoning else [])
        return M.OpenRouterModel(
            id=f"{OWNER}/{model_id}", name=self.name, created=self.created, description=self.description,
            context_length=self.context_length, max_output_length=self.max_output,
            hugging_face_id=self.hugging_face_id, input_modalities=["text"], output_modalities=["text"],
            quantization=self.quantization, supported_features=features,
            supported_sampling_parameters=list(SAMPLING),
        )

    def huggingface(self, model_id: str) -> M.HuggingFaceModel:
        caps = M.HuggingFaceCapabilities(function_calling=True, streaming=True, structured_outputs=True, vision=False)
        return M.HuggingFaceModel(id=model_id, created=self.created, owned_by=OWNER,
                                  context_length=self.context_length, hugging_face_id=self.hugging_face_id,
                                  capabilities=caps)

    def public(self, model_id: str, rate_limits: dict[str, int]) -> M.PublicModel:
        yes = dict(function_calling=True, json_mode=True, parallel_tool_calls=True, response_format=True,
                   structured_outputs=True, tool_choice=True, tools=True)
        params = dict(frequency_penalty=True, logit_bias=True, logprobs=True, presence_penalty=True,
                      top_logprobs=True)
        return M.PublicModel(
            id=model_id, name=self.name, description=self.description, created=self.created, owned_by=OWNER,
            hugging_face_id=self.hugging_face_id, quantization=self.quantization,
            architecture=M.PublicArchitecture(modality="text", tokenizer=self.tokenizer,
                                              instruct_type=self.instruct_type),
            capabilities=M.PublicCapabilities(**yes, reasoning=self.reasoning, streaming=True, vision=False),
            limits=M.PublicLimits(max_context_length=self.context_length, max_completion_tokens=self.max_output,
                                  requests_per_minute=rate_limits.get("rpm") or None,
                                  tokens_per_minute=rate_limits.get("tpm") or None),
            # repetition_penalty is not a request field of the Cerebras API (a request with it is a 400)
            supported_parameters=M.PublicSupportedParameters(**params, repetition_penalty=False),
        )
