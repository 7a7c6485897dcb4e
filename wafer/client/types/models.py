"""``/v1/models`` objects in the three ``format``s (spec 7), names as in cerebras-cloud-sdk."""

from __future__ import annotations

from typing import Literal, TypeAlias

from .._models import BaseModel

__all__ = [
    "HuggingFaceModel",
    "HuggingFaceModelsResponse",
    "ModelListResponse",
    "ModelMetadata",
    "ModelMetadataList",
    "ModelRetrieveResponse",
    "OpenRouterModel",
    "OpenRouterModelsResponse",
    "PublicModel",
]


class ModelMetadata(BaseModel):
    id: str
    created: int | None = None
    object: Literal["model"] | None = None
    owned_by: str | None = None


class ModelMetadataList(BaseModel):
    data: list[ModelMetadata]
    object: Literal["list"] | None = None


class OpenRouterModelPricing(BaseModel):
    completion: str
    prompt: str
    image: str | None = None
    input_cache_read: str | None = None
    input_cache_write: str | None = None
    request: str | None = None


class OpenRouterModelDatacenter(BaseModel):
    country_code: str


class OpenRouterModelOpenrouter(BaseModel):
    slug: str


class OpenRouterModel(BaseModel):
    id: str
    context_length: int
    created: int
    max_output_length: int
    name: str
    pricing: OpenRouterModelPricing
    datacenters: list[OpenRouterModelDatacenter] | None = None
    description: str | None = None
    hugging_face_id: str | None = None
    input_modalities: list[str] | None = None
    openrouter: OpenRouterModelOpenrouter | None = None
    output_modalities: list[str] | None = None
    quantization: str | None = None
    supported_features: list[str] | None = None
    supported_sampling_parameters: list[str] | None = None


class OpenRouterModelsResponse(BaseModel):
    data: list[OpenRouterModel]


class HuggingFaceModelPricing(BaseModel):
    input: float
    output: float


class HuggingFaceModelCapabilities(BaseModel):
    function_calling: bool | None = None
    streaming: bool | None = None
    structured_outputs: bool | None = None
    vision: bool | None = None


class HuggingFaceModel(BaseModel):
    id: str
    context_length: int
    created: int
    owned_by: str
    pricing: HuggingFaceModelPricing
    capabilities: HuggingFaceModelCapabilities | None = None
    hugging_face_id: str | None = None
    object: Literal["model"] | None = None


class HuggingFaceModelsResponse(BaseModel):
    data: list[HuggingFaceModel]
    object: Literal["list"] | None = None


class PublicModelArchitecture(BaseModel):
    modality: Literal["text", "text+vision", "multimodal"]
    tokenizer: str
    instruct_type: str | None = None


class PublicModelCapabilities(BaseModel):
    function_calling: bool | None = None
    json_mode: bool | None = None
    parallel_tool_calls: bool | None = None
    reasoning: bool | None = None
    response_format: bool | None = None
    streaming: bool | None = None
    structured_outputs: bool | None = None
    tool_choice: bool | None = None
    tools: bool | None = None
    vision: bool | None = None


class PublicModelLimits(BaseModel):
    max_completion_tokens: int
    max_context_length: int
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class PublicModelPricing(BaseModel):
    completion: str
    prompt: str


class PublicModelSupportedParameters(BaseModel):
    frequency_penalty: bool | None = None
    logit_bias: bool | None = None
    logprobs: bool | None = None
    max_completion_tokens: bool | None = None
    presence_penalty: bool | None = None
    repetition_penalty: bool | None = None
    seed: bool | None = None
    stop: bool | None = None
    temperature: bool | None = None
    top_logprobs: bool | None = None
    top_p: bool | None = None


class PublicModel(BaseModel):
    id: str
    architecture: PublicModelArchitecture
    capabilities: PublicModelCapabilities
    created: int
    description: str
    limits: PublicModelLimits
    name: str
    owned_by: str
    pricing: PublicModelPricing
    supported_parameters: PublicModelSupportedParameters
    datacenter_locations: list[str] | None = None
    deprecated: bool | None = None
    hugging_face_id: str | None = None
    object: Literal["model"] | None = None
    preview: bool | None = None
    quantization: str | None = None


ModelListResponse: TypeAlias = ModelMetadataList | OpenRouterModelsResponse | HuggingFaceModelsResponse
ModelRetrieveResponse: TypeAlias = ModelMetadata | OpenRouterModel | HuggingFaceModel | PublicModel
