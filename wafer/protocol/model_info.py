"""Model discovery objects: ``/v1/models?format=openrouter|huggingface`` and ``/public/v1/models``.

The shapes are those of the Cerebras SDK's ``ModelListResponse`` / ``ModelRetrieveResponse``
(``OpenRouterModel``, ``HuggingFaceModel``, ``PublicModel``); the default format is
``responses.Model`` / ``responses.ModelList``. Serialize with ``responses.dump`` (``None`` omitted).

Prices are decimal strings (USD per token) in the OpenRouter and public shapes and floats (USD per
million tokens) in the Hugging Face one; a self-hosted model costs nothing, so they are all zero.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from .responses import _Out

__all__ = [
    "OpenRouterPricing",
    "OpenRouterModel",
    "OpenRouterModelList",
    "HuggingFacePricing",
    "HuggingFaceCapabilities",
    "HuggingFaceModel",
    "HuggingFaceModelList",
    "PublicArchitecture",
    "PublicCapabilities",
    "PublicLimits",
    "PublicPricing",
    "PublicSupportedParameters",
    "PublicModel",
    "PublicModelList",
]


class OpenRouterPricing(_Out):
    prompt: str = "0"
    completion: str = "0"
    request: Optional[str] = None
    image: Optional[str] = None
    input_cache_read: Optional[str] = None
    input_cache_write: Optional[str] = None


class OpenRouterModel(_Out):
    id: str
    name: str
    created: int
    description: Optional[str] = None
    context_length: int
    max_output_length: int
    hugging_face_id: Optional[str] = None
    input_modalities: Optional[list[str]] = None
    output_modalities: Optional[list[str]] = None
    quantization: Optional[str] = None
    pricing: OpenRouterPricing = Field(default_factory=OpenRouterPricing)
    supported_features: Optional[list[str]] = None
    supported_sampling_parameters: Optional[list[str]] = None


class OpenRouterModelList(_Out):
    """OpenRouter's list has no ``object`` key."""

    data: list[OpenRouterModel] = Field(default_factory=list)


class HuggingFacePricing(_Out):
    input: float = 0.0
    output: float = 0.0


class HuggingFaceCapabilities(_Out):
    function_calling: Optional[bool] = None
    streaming: Optional[bool] = None
    structured_outputs: Optional[bool] = None
    vision: Optional[bool] = None


class HuggingFaceModel(_Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    context_length: int
    hugging_face_id: Optional[str] = None
    pricing: HuggingFacePricing = Field(default_factory=HuggingFacePricing)
    capabilities: Optional[HuggingFaceCapabilities] = None


class HuggingFaceModelList(_Out):
    object: Literal["list"] = "list"
    data: list[HuggingFaceModel] = Field(default_factory=list)


class PublicArchitecture(_Out):
    modality: Literal["text", "text+vision", "multimodal"] = "text"
    tokenizer: str
    instruct_type: Optional[str] = None


class PublicCapabilities(_Out):
    function_calling: bool
    json_mode: bool
    parallel_tool_calls: bool
    reasoning: bool
    response_format: bool
    streaming: bool = True
    structured_outputs: bool
    tool_choice: bool
    tools: bool
    vision: bool


class PublicLimits(_Out):
    max_context_length: int = Field(gt=0)
    max_completion_tokens: int = Field(gt=0)
    requests_per_minute: Optional[int] = None
    tokens_per_minute: Optional[int] = None


class PublicPricing(_Out):
    prompt: str = "0"
    completion: str = "0"


class PublicSupportedParameters(_Out):
    frequency_penalty: bool
    logit_bias: bool
    logprobs: bool
    max_completion_tokens: bool = True
    presence_penalty: bool
    repetition_penalty: bool
    seed: bool = True
    stop: bool = True
    temperature: bool = True
    top_logprobs: bool
    top_p: bool = True


class PublicModel(_Out):
    id: str
    object: Literal["model"] = "model"
    name: str
    description: str
    created: int
    owned_by: str
    hugging_face_id: Optional[str] = None
    quantization: Optional[str] = None
    deprecated: Optional[bool] = None
    preview: Optional[bool] = None
    architecture: PublicArchitecture
    capabilities: PublicCapabilities
    limits: PublicLimits
    pricing: PublicPricing = Field(default_factory=PublicPricing)
    supported_parameters: PublicSupportedParameters


class PublicModelList(_Out):
    object: Literal["list"] = "list"
    data: list[PublicModel] = Field(default_factory=list)
