"""The Hub's naming rule for namespaces and repo names, without the storage layer's imports (the
accounts module, loaded by ``import localhub``, needs it too)."""

from __future__ import annotations

import re

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")


def valid_name(name: str) -> bool:
    """The Hub's rule for a namespace or a repo name: letters, digits, '-', '_', '.', at most 96
    characters, starting and ending with a letter or digit, no '--' or '..'."""
    return bool(NAME_RE.match(name)) and "--" not in name and ".." not in name
