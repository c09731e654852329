"""How to browse and download a staged release: one text, printed by the publisher after staging and by
the pipeline when it serves the staging Hub, always with the ports actually in use."""

from __future__ import annotations


def download_instructions(hub_url: str, results_repo: str, model: tuple[str, str] | None) -> list[str]:
    """Shell lines that read the results dataset (and one model at one epoch branch) from ``hub_url``."""
    lines = [
        "Download from the staging Hub (huggingface_hub reads HF_ENDPOINT at import time; HF_HUB_OFFLINE must",
        "be unset or 0, since the staging Hub is a server too):",
        f"  export HF_ENDPOINT={hub_url} HF_HUB_DISABLE_XET=1 HF_HUB_OFFLINE=0",
        f"  python -c \"import datasets; print(datasets.load_dataset('{results_repo}', 'leaderboard'))\"",
    ]
    if model:
        repo, revision = model
        lines.append(
            '  python -c "from transformers import AutoModelForCausalLM as M; '
            f"M.from_pretrained('{repo}', revision='{revision}')\""
        )
    return lines
