"""``/v1/models`` objects in the three ``format``s (spec 7), names as in cerebras-cloud-sdk."""

from __future__ import annotations

from typing import List, Literal, Optional, Union

from typing_extensions import TypeAlias

from .._models import BaseModel

__all__ = [
    "ModelMetadata",
    "ModelMetadataList",
    "OpenRouterModel",
    "OpenRouterModelsResponse",
    "HuggingFaceModel",
    "HuggingFaceModelsResponse",
    "PublicModel",
    "ModelListResponse",
    "ModelRetrieveResponse",
]


class ModelMetadata(BaseModel):
    id: str
    created: Optional[int] = None
    object: Optional[Literal["model"]] = None
    owned_by: Optional[str] = None


class ModelMetadataList(BaseModel):
    data: List[ModelMetadata]
    object: Optional[Literal["list"]] = None


class OpenRouterModelPricing(BaseModel):
    completion: str
    prompt: str
    image: Optional[str] = None
    input_cache_read: Optional[str] = None
    input_cache_write: Optional[str] = None
    request: Optional[str] = None


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
    datacenters: Optional[List[OpenRouterModelDatacenter]] = None
    description: Optional[str] = None
    hugging_face_id: Optional[str] = None
    input_modalities: Optional[List[str]] = None
    openrouter: Optional[OpenRouterModelOpenrouter] = None
    output_modalities: Optional[List[str]] = None
    quantization: Optional[str] = None
    supported_features: Optional[List[str]] = None
    supported_sampling_parameters: Optional[List[str]] = None


class OpenRouterModelsResponse(BaseModel):
    data: List[OpenRouterModel]


class HuggingFaceModelPricing(BaseModel):
    input: float
    output: float


class HuggingFaceModelCapabilities(BaseModel):
    function_calling: Optional[bool] = None
    streaming: Optional[bool] = None
    structured_outputs: Optional[bool] = None
    vision: Optional[bool] = None


class HuggingFaceModel(BaseModel):
    id: str
    context_length: int
    created: int
    owned_by: str
    pricing: HuggingFaceModelPricing
    capabilities: Optional[HuggingFaceModelCapabilities] = None
    hugging_face_id: Optional[str] = None
    object: Optional[Literal["model"]] = None


class HuggingFaceModelsResponse(BaseModel):
    data: List[HuggingFaceModel]
    object: Optional[Literal["list"]] = None


class PublicModelArchitecture(BaseModel):
    modality: Literal["text", "text+vision", "multimodal"]
    tokenizer: str
    instruct_type: Optional[str] = None


class PublicModelCapabilities(BaseModel):
    function_calling: Optional[bool] = None
    json_mode: Optional[bool] = None
    parallel_tool_calls: Optional[bool] = None
    reasoning: Optional[bool] = None
    response_format: Optional[bool] = None
    streaming: Optional[bool] = None
    structured_outputs: Optional[bool] = None
    tool_choice: Optional[bool] = None
    tools: Optional[bool] = None
    vision: Optional[bool] = None


class PublicModelLimits(BaseModel):
    max_completion_tokens: int
    max_context_length: int
    requests_per_minute: Optional[int] = None
    tokens_per_minute: Optional[int] = None


class PublicModelPricing(BaseModel):
    completion: str
    prompt: str


class PublicModelSupportedParameters(BaseModel):
    frequency_penalty: Optional[bool] = None
    logit_bias: Optional[bool] = None
    logprobs: Optional[bool] = None
    max_completion_tokens: Optional[bool] = None
    presence_penalty: Optional[bool] = None
    repetition_penalty: Optional[bool] = None
    seed: Optional[bool] = None
    stop: Optional[bool] = None
    temperature: Optional[bool] = None
    top_logprobs: Optional[bool] = None
    top_p: Optional[bool] = None


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
    datacenter_locations: Optional[List[str]] = None
    deprecated: Optional[bool] = None
    hugging_face_id: Optional[str] = None
    object: Optional[Literal["model"]] = None
    preview: Optional[bool] = None
    quantization: Optional[str] = None


ModelListResponse: TypeAlias = Union[ModelMetadataList, OpenRouterModelsResponse, HuggingFaceModelsResponse]
ModelRetrieveResponse: TypeAlias = Union[ModelMetadata, OpenRouterModel, HuggingFaceModel, PublicModel]
