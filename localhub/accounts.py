"""Who may do what on the local Hub: users, their tokens (read or write) and organisations.

Two modes:

- **single-user** (the default, and ``--token``/``tokens={token: user}`` naming one user): that user
  owns every namespace, as a staging server on 127.0.0.1 needs (the publisher stages an
  organisation's repos with its own token). This is how the pipeline, the publisher and the tests
  use it.
- **team** (a tokens file, or several users): each user writes only to its own namespace and to its
  organisations'; private repos and collections are visible to their namespace's members only.

A tokens file (YAML or JSON; ``--tokens-file`` or ``$LOCALHUB_TOKENS_FILE``)::

    users:
      alice:
        tokens:
          - hf_alice_write_...                       # a write token
          - {token: hf_alice_read_..., role: read}   # a read-only token
      bob:
        tokens: [hf_bob_...]
    orgs:
      lab: [alice, bob]                              # both write to lab/...
    admin_token: ...                                 # optional: enables the /_admin routes
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError
from localhub.config import DEFAULT_TOKEN, DEFAULT_USER
from localhub.names import valid_name

TOKENS_FILE_ENV = "LOCALHUB_TOKENS_FILE"
ADMIN_TOKEN_ENV = "LOCALHUB_ADMIN_TOKEN"
ROLES = ("read", "write")
MIN_TOKEN_CHARS = 8


class AccountsError(ConfigError):
    """A tokens file or token list that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class Principal:
    """What one token allows: its user, the user's organisations, and whether it may write."""

    user: str
    orgs: frozenset[str] = frozenset()
    can_write: bool = True
    owns_everything: bool = False  # single-user mode

    def member_of(self, namespace: str) -> bool:
        """True when ``namespace`` is the user's own or one of its organisations'."""
        wanted = namespace.lower()
        return self.owns_everything or wanted == self.user.lower() or wanted in {o.lower() for o in self.orgs}

    @property
    def role(self) -> str:
        return "write" if self.can_write else "read"


@dataclass
class Accounts:
    """Tokens -> principals, plus the admin token (``None``: the /_admin routes are disabled)."""

    tokens: dict[str, Principal] = field(default_factory=dict)
    admin_token: str | None = None
    single_user: bool = False

    def principal(self, token: str) -> Principal | None:
        return self.tokens.get(token)

    @property
    def users(self) -> list[str]:
        return sorted({p.user for p in self.tokens.values()})

    @classmethod
    def simple(cls, tokens: Mapping[str, str], admin_token: str | None) -> Accounts:
        """``{token: user}`` write tokens: single-user mode when they name one user, else team mode
        without organisations."""
        for token, user in tokens.items():
            _check_user(user, "user")
            _check_token(token, user)
        single = len(set(tokens.values())) <= 1
        principals = {token: Principal(user, owns_everything=single) for token, user in tokens.items()}
        return cls(principals, admin_token, single)

    @classmethod
    def default(cls, admin_token: str | None) -> Accounts:
        return cls.simple({DEFAULT_TOKEN: DEFAULT_USER}, admin_token)

    @classmethod
    def from_obj(cls, raw: Any, admin_token: str | None = None) -> Accounts:
        """A parsed tokens file; ``admin_token`` wins over the file's."""
        if not isinstance(raw, dict):
            raise AccountsError(
                "a tokens file is a mapping with 'users' (and optionally 'orgs', 'admin_token')"
            )
        unknown = set(raw) - {"users", "orgs", "admin_token"}
        if unknown:
            raise AccountsError(f"unknown key(s) {sorted(unknown)}: expected users, orgs, admin_token")
        users, orgs = raw.get("users") or {}, raw.get("orgs") or {}
        if not isinstance(users, dict) or not users:
            raise AccountsError("'users' must map at least one user name to {tokens: [...]}")
        if not isinstance(orgs, dict):
            raise AccountsError("'orgs' must map organisation names to lists of user names")
        memberships = _memberships(orgs, set(users))
        principals: dict[str, Principal] = {}
        for user, spec in users.items():
            _check_user(user, "user")
            for token, role in _user_tokens(user, spec):
                if token in principals:
                    raise AccountsError(f"user {user!r}: a token is listed twice (tokens must be unique)")
                principals[token] = Principal(user, frozenset(memberships.get(user, ())), role == "write")
        file_admin = raw.get("admin_token")
        if file_admin is not None and not isinstance(file_admin, str):
            raise AccountsError("'admin_token' must be a string")
        return cls(principals, admin_token or file_admin, single_user=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], admin_token: str | None = None) -> Accounts:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise AccountsError(f"cannot read {path}: {err.strerror or err}") from err
        except yaml.YAMLError as err:
            raise AccountsError(f"{path} is not valid YAML/JSON: {_one_line(err)}") from err
        if path.stat().st_mode & 0o077:
            # Not fatal (a container may mount it so), but the secrets in it should be the server's only.
            print(f"localhub: warning: {path} is readable by other users; chmod 600 it", flush=True)
        return cls.from_obj(raw, admin_token)


def _one_line(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _check_user(name: Any, what: str) -> None:
    if not isinstance(name, str) or not valid_name(name):
        raise AccountsError(
            f"{what} name {name!r} is not a valid Hub namespace (letters, digits, '-', '_', '.')"
        )


def _check_token(token: Any, user: str) -> None:
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or not token.isprintable() or " " in token:
        raise AccountsError(
            f"user {user!r}: a token must be a string of at least {MIN_TOKEN_CHARS} printable"
            " characters without spaces"
        )


def _user_tokens(user: str, spec: Any) -> list[tuple[str, str]]:
    tokens = spec.get("tokens") if isinstance(spec, dict) else None
    if not isinstance(tokens, list) or not tokens:
        raise AccountsError(
            f"user {user!r}: expected {{tokens: [TOKEN or {{token: ..., role: read|write}}]}}"
        )
    out = []
    for item in tokens:
        token, role = (
            (item, "write") if not isinstance(item, dict) else (item.get("token"), item.get("role", "write"))
        )
        _check_token(token, user)
        if role not in ROLES:
            raise AccountsError(f"user {user!r}: role {role!r} is not one of {', '.join(ROLES)}")
        out.append((token, role))
    return out


def _memberships(orgs: dict[Any, Any], users: set[str]) -> dict[str, set[str]]:
    memberships: dict[str, set[str]] = {}
    for org, members in orgs.items():
        _check_user(org, "organisation")
        if org in users:
            raise AccountsError(f"organisation {org!r} has the name of a user: namespaces must be unique")
        if not isinstance(members, list):
            raise AccountsError(f"organisation {org!r}: expected a list of user names")
        for member in members:
            if member not in users:
                raise AccountsError(f"organisation {org!r}: member {member!r} is not in 'users'")
            memberships.setdefault(member, set()).add(org)
    return memberships
