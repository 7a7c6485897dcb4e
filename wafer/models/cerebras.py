"""The model ids of the Cerebras Inference API, for ``wafer serve --cerebras-ids``.

Every id Cerebras has published for its public endpoint (current, preview and retired ones, so that
older samples and CI jobs run too). With the flag, each answers on one served model, which
discovery (``/v1/models``) then lists under each id with that model's own metadata.
"""

from __future__ import annotations

__all__ = ["CEREBRAS_MODEL_IDS"]

CEREBRAS_MODEL_IDS: tuple[str, ...] = (
    "gpt-oss-120b",
    "zai-glm-4.7",
    "zai-glm-4.6",
    "llama3.1-8b",
    "llama-3.3-70b",
    "llama-4-scout-17b-16e-instruct",
    "qwen-3-32b",
    "qwen-3-235b-a22b-instruct-2507",
    "qwen-3-235b-a22b-thinking-2507",
    "qwen-3-coder-480b",
    "gemma-4-31b",
    "qwen-3.8-27b",
)
