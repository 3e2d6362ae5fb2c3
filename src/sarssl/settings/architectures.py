"""Whether a name is a timm model, without importing timm (and torch) into the process that
asks: the Snakefile's parse checks every pretrain run's architecture and stays torch-free.

timm's model names are a fact of the installed timm version, so they are listed once per
version, by a child process, and kept in the user's cache (a cache that cannot be written
only costs the child process at each parse).
"""

import contextlib
import json
import os
import subprocess
import sys
from functools import cache
from importlib.metadata import version
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import SarsslError

# Deprecated names still create (a mapped) model, as timm.is_model says.
LIST_MODELS = (
    "import json, timm; "
    "print(json.dumps(timm.list_models() + list(timm.models.get_deprecated_models())))"
)


def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "sarssl" / f"timm-{version('timm')}-models.json"


@cache
def timm_models() -> frozenset[str]:
    """Every model name the installed timm creates."""
    cached = cache_file()
    try:
        return frozenset(json.loads(cached.read_text()))
    except (OSError, ValueError):
        pass
    listed = subprocess.run(
        [sys.executable, "-c", LIST_MODELS], capture_output=True, text=True, check=False
    )
    if listed.returncode:
        raise SarsslError(f"listing timm's models failed: {listed.stderr.strip()}")
    with contextlib.suppress(OSError):  # a read-only home: list them again next time
        write_text_atomic(cached, listed.stdout)
    return frozenset(json.loads(listed.stdout))


def is_timm_model(name: str) -> bool:
    """As timm.is_model: a model name, with or without a pretrained tag (`name.tag`)."""
    return name.partition(".")[0] in timm_models()
