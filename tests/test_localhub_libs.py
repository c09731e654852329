"""transformers, peft and datasets load what was uploaded to the local Hub, through HF_ENDPOINT."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch
from huggingface_hub import HfApi

from localhub import DEFAULT_USER


@pytest.fixture
def api(local_hub) -> HfApi:
    return HfApi(token=local_hub.token)


def _repo(api: HfApi, repo_type: str = "model") -> str:
    repo_id = f"{DEFAULT_USER}/libs-{uuid.uuid4().hex[:10]}"
    api.create_repo(repo_id, repo_type=repo_type)
    return repo_id


def test_transformers_loads_main_and_an_epoch_branch(api: HfApi, tiny_llama: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo_id = _repo(api)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with torch.no_grad():  # epoch-01 gets visibly different weights
        for param in base.parameters():
            param.add_(1.0)
    base.save_pretrained(tmp_path / "epoch-01")
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(tmp_path / "epoch-01")
    api.upload_folder(folder_path=tiny_llama, repo_id=repo_id)
    api.create_branch(repo_id, branch="epoch-01")
    api.upload_folder(folder_path=tmp_path / "epoch-01", repo_id=repo_id, revision="epoch-01")

    main = AutoModelForCausalLM.from_pretrained(repo_id)
    epoch = AutoModelForCausalLM.from_pretrained(repo_id, revision="epoch-01")
    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision="epoch-01")
    local = AutoModelForCausalLM.from_pretrained(tiny_llama)
    name, weight = next(iter(local.state_dict().items()))
    assert torch.equal(main.state_dict()[name], weight)
    assert torch.allclose(epoch.state_dict()[name], weight + 1.0)
    assert (
        tokenizer.decode(tokenizer("###Answer: 42")["input_ids"], skip_special_tokens=True) == "###Answer: 42"
    )


def test_peft_loads_an_adapter_from_the_hub(api: HfApi, tiny_llama: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    repo_id = _repo(api)
    lora = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_llama),
        LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    lora.save_pretrained(tmp_path / "adapter")
    api.upload_folder(folder_path=tmp_path / "adapter", repo_id=repo_id)
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), repo_id)
    inputs = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(loaded(inputs).logits, lora(inputs).logits, atol=1e-5)


def test_datasets_loads_parquet_configs_from_the_card(api: HfApi, tmp_path: Path) -> None:
    import datasets

    repo_id = _repo(api, "dataset")
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    pd.DataFrame({"model": ["a", "b"], "score": [0.5, 0.75]}).to_parquet(folder / "data/leaderboard.parquet")
    pd.DataFrame({"model": ["a"], "benchmark": ["mmlu"]}).to_parquet(folder / "data/scores.parquet")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: leaderboard\n  data_files: data/leaderboard.parquet\n  default: true\n"
        "- config_name: scores\n  data_files: data/scores.parquet\n---\n# Results\n"
    )
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")

    leaderboard = datasets.load_dataset(repo_id, split="train")
    assert leaderboard.to_pandas()["score"].tolist() == [0.5, 0.75]
    scores = datasets.load_dataset(repo_id, "scores", split="train")
    assert scores.column_names == ["model", "benchmark"] and len(scores) == 1
