"""Running `sarssl` commands in a child process from a Snakemake job.

Jobs that train start their data-loader workers by forkserver, which re-imports the parent's
main module: a Snakemake script (a temporary file, no main guard) must therefore not train
in its own process. It runs `python -m sarssl.cli ...` instead, whose output goes to the
job's log through this process's stdout and stderr.
"""

import logging
import subprocess
import sys
from collections.abc import Sequence

from sarssl.errors import SarsslError

log = logging.getLogger(__name__)


def run_sarssl(
    arguments: Sequence[str], launcher: Sequence[str] = (), prefix: Sequence[str] = ()
) -> None:
    """`[prefix] python [launcher] -m sarssl.cli arguments`; e.g. launcher = torchrun's
    module, prefix = srun and its options."""
    command = [*prefix, sys.executable, *launcher, "-m", "sarssl.cli", *arguments]
    log.info("running %s", " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    completed = subprocess.run(command, stdout=sys.stdout, stderr=sys.stderr, check=False)
    if completed.returncode:
        raise SarsslError(
            f"sarssl {arguments[0]} exited with status {completed.returncode}; "
            "its output is above in this log"
        )
