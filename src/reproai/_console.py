"""Messages to the user on stderr that leave the progress bars intact."""

from __future__ import annotations

import sys

__all__ = ["say"]


def say(message: str) -> None:
    """Print ``reproai: message`` on stderr, above any progress bars."""
    from tqdm.auto import tqdm

    tqdm.write(f"reproai: {message}", file=sys.stderr)
