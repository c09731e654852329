"""Defaults of the local Hub, in one place. The tokens below are public on purpose: the local Hub is
a staging target on 127.0.0.1, not a security boundary. For a shared interface, use a tokens file
(team mode, docs/localhub.md)."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8808
DEFAULT_USER = "localhub"
DEFAULT_TOKEN = "hf_localhub_staging_token"
DEFAULT_ADMIN_TOKEN = "localhub_admin_token"
DEFAULT_MAX_BODY_BYTES = 1024**3  # API bodies (commits carry regular files base64-encoded); not LFS uploads
