"""Facts about the Hugging Face Hub that both the publisher and the local Hub server rely on."""

from __future__ import annotations

# The Hub stores every file of 10 MB or more with LFS (and any binary file, whatever its size).
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
