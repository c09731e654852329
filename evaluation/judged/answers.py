"""The model under test writes its answers: MT-Bench's two turns and AlpacaEval's instructions, with
the prompt format it was trained with (the study's ``###Question/###Answer`` format, or its tokenizer's
chat template for runs trained with ``template: chat``). Batched ``generate`` with left padding;
LoRA epochs are applied as adapters on their base model, as in the lm-eval runner."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.io import read_json
from common.template import QUESTION_PREFIX, render_prompt
from evaluation.runner import EvalModel

log = logging.getLogger(__name__)
STOP_MARKERS = ("\n" + QUESTION_PREFIX.strip(), "\n###Answer")  # a paper-format model starting a new turn


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 1024
    batch_size: int = 8
    device: str | None = None
    seed: int = 0


Conversation = tuple[tuple[str, str | None], ...]  # (user turn, the model's answer or None to generate)


def prompt_format(model: EvalModel) -> str:
    """``paper`` or ``chat``: the template of the model's training job (base models: ``paper``)."""
    run_json = Path(model.path) / "run.json"
    if model.identity.get("run_id") and run_json.is_file():
        return str(read_json(run_json)["job"].get("template", "paper"))
    return "paper"


def render(conversation: Conversation, fmt: str, tokenizer: Any) -> str:
    if fmt == "chat":
        messages: list[dict[str, str]] = []
        for user, answer in conversation:
            messages.append({"role": "user", "content": user})
            if answer is not None:
                messages.append({"role": "assistant", "content": answer})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [render_prompt(user) + (answer if answer is not None else "") for user, answer in conversation]
    return "\n".join(parts)


def _cut(text: str, fmt: str) -> str:
    if fmt == "paper":
        for marker in STOP_MARKERS:
            text = text.split(marker, 1)[0]
    return text.strip()


class AnswerGenerator:
    """Loads the model on first use, so a fully cached run never loads weights."""

    def __init__(self, model: EvalModel, settings: GenerationSettings):
        self.model = model
        self.settings = settings
        self.format = prompt_format(model)
        self._lm: Any = None
        self._tokenizer: Any = None

    def release(self) -> None:
        """Drop the weights (the next ``generate`` loads them again)."""
        self._lm = self._tokenizer = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        lm = AutoModelForCausalLM.from_pretrained(self.model.base_path or self.model.path)
        if self.model.is_adapter:
            from peft import PeftModel  # only LoRA epochs need it

            lm = PeftModel.from_pretrained(lm, self.model.path)
        self._lm = lm.to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(self.model.path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer

    def _budget(self) -> tuple[int, int | None]:
        """(new tokens, longest prompt) within the model's context length."""
        limit = getattr(self._lm.config, "max_position_embeddings", None)
        new = self.settings.max_new_tokens
        if limit is None:
            return new, None
        new = min(new, limit // 2)
        return new, limit - new

    def generate(
        self, conversations: list[Conversation], temperature: float, progress: Any = None
    ) -> list[str]:
        import torch

        if self._lm is None:
            self._load()
        tokenizer, answers = self._tokenizer, []
        new_tokens, prompt_limit = self._budget()
        texts = [render(c, self.format, tokenizer) for c in conversations]
        for start in range(0, len(texts), self.settings.batch_size):
            batch = tokenizer(
                texts[start : start + self.settings.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=self.format == "paper",
            )
            if prompt_limit is not None and batch["input_ids"].shape[1] > prompt_limit:
                # keep the end of the conversation: the question being answered
                batch = {k: v[:, -prompt_limit:] for k, v in batch.items()}
            batch = {k: v.to(self._lm.device) for k, v in batch.items()}
            torch.manual_seed(self.settings.seed + start)
            sampling = {"do_sample": True, "temperature": temperature} if temperature >= 1e-4 else {}
            with torch.no_grad():
                output = self._lm.generate(
                    **batch,
                    max_new_tokens=new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **(sampling or {"do_sample": False}),
                )
            for row in output[:, batch["input_ids"].shape[1] :]:
                answers.append(_cut(tokenizer.decode(row, skip_special_tokens=True), self.format))
            if progress is not None:
                progress.update(len(output))
        return answers
