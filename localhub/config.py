"""Defaults of the local Hub, in one place. The tokens below are public on purpose: the local Hub is
a staging target on 127.0.0.1, not a security boundary. Pass your own with --token/--admin-token
when it listens on a shared interface."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8808
DEFAULT_USER = "localhub"
DEFAULT_TOKEN = "hf_localhub_staging_token"
DEFAULT_ADMIN_TOKEN = "localhub_admin_token"
