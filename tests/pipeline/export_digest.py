"""Digest of a ``sessionkit run --export DIR`` folder, for byte-for-byte comparisons.

Run as a script to print the digest of a folder::

    python tests/pipeline/export_digest.py DIR
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def export_digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory``, keyed by its relative POSIX path."""
    return {
        path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


if __name__ == "__main__":
    print(json.dumps(export_digest(Path(sys.argv[1])), indent=2, sort_keys=True))
