"""Model catalogue, cache, pulling, requantization and Hugging Face repo ids.

    from wafer.models import resolve_model
    m = resolve_model("smollm2-135m")        # pulls on first use
    m.path, m.id, m.quant

See docs/models.md.
"""

from .cache import InvalidModelError, ModelNotFoundError, default_cache_dir
from .catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueEntry
from .pull import PullError, ResolvedModel, list_models, pull, resolve_model

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "CatalogueEntry",
    "InvalidModelError",
    "ModelNotFoundError",
    "PullError",
    "ResolvedModel",
    "default_cache_dir",
    "list_models",
    "pull",
    "resolve_model",
]
