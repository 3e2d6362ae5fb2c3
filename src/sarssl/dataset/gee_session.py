"""The Earth Engine session of the `gee` export: unattended authentication (never interactive,
no secret in any message) and retries of transient faults with backoff and jitter."""

import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import SarsslError
from .gee import ENDPOINTS

log = logging.getLogger(__name__)


class GeeAuthError(SarsslError):
    """Earth Engine credentials or project are missing or unusable."""


# --------------------------------------------------------------------------------------
# Authentication

SECRET_PATTERNS = (
    re.compile(r"ya29\.[0-9A-Za-z_\-.]+"),  # OAuth access tokens
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(
        r'("?(?:private_key|access_token|refresh_token|client_secret|id_token)"?\s*[:=]\s*)"?[^",\s}]+'
    ),
    re.compile(r"(Bearer\s+)[0-9A-Za-z_\-.]+"),
)


def redact(text: str) -> str:
    """Remove anything that looks like a credential from `text`."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


AUTH_HELP = (
    "Earth Engine needs unattended credentials: set gee.key_file in the config (or "
    "GOOGLE_APPLICATION_CREDENTIALS) to a service-account key file, or create application "
    "default credentials once with `gcloud auth application-default login`; and set the "
    "Cloud project with gee.project (or SARSSL_GEE_PROJECT)."
)


@dataclass(frozen=True)
class GeeAuth:
    project: str | None
    key_file: str | None


def resolve_auth(
    project: str | None, key_file: str | None, environ: Mapping[str, str] = os.environ
) -> GeeAuth:
    """Config values first, then the environment."""
    return GeeAuth(
        project=project or environ.get("SARSSL_GEE_PROJECT") or environ.get("GOOGLE_CLOUD_PROJECT"),
        key_file=key_file or environ.get("GOOGLE_APPLICATION_CREDENTIALS"),
    )


def adc_file(environ: Mapping[str, str] = os.environ) -> Path:
    config_dir = environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud"
    return Path(config_dir) / "application_default_credentials.json"


def credentials_available(auth: GeeAuth, environ: Mapping[str, str] = os.environ) -> bool:
    return bool(auth.key_file) or adc_file(environ).is_file()


def initialize(
    ee: Any,
    auth: GeeAuth,
    environ: Mapping[str, str] = os.environ,
    endpoint: str = "high_volume",
) -> None:
    """Initialise Earth Engine from a service-account key file or application default
    credentials, on `endpoint` (see ENDPOINTS). Fails at once, saying what to set, when
    neither is there: it never prompts (jobs run under SLURM) and never probes a metadata
    server."""
    if not auth.project:
        raise GeeAuthError(f"no Cloud project. {AUTH_HELP}")
    try:
        if auth.key_file:
            if not Path(auth.key_file).is_file():
                raise GeeAuthError(
                    f"service-account key file {auth.key_file} does not exist. {AUTH_HELP}"
                )
            credentials = ee.ServiceAccountCredentials(key_file=auth.key_file)
        elif adc_file(environ).is_file():
            import google.auth

            credentials, _ = google.auth.default(scopes=ee.oauth.SCOPES)
        else:
            raise GeeAuthError(f"no credentials found. {AUTH_HELP}")
        ee.Initialize(credentials=credentials, project=auth.project, url=ENDPOINTS[endpoint])
    except GeeAuthError:
        raise
    except Exception as err:  # whatever the auth libraries raise: keep secrets out
        raise GeeAuthError(
            f"Earth Engine initialisation failed: {redact(str(err))}. {AUTH_HELP}"
        ) from None


# --------------------------------------------------------------------------------------
# Faults: classification, retries with backoff and jitter

TRANSIENT_STATUS = {429, 500, 502, 503, 504}
TRANSIENT_MESSAGES = re.compile(
    r"too many (concurrent )?requests|quota exceeded|rate limit|resource exhausted|"
    r"internal error|service unavailable|backend error|deadline exceeded|timed out|"
    r"temporarily unavailable|connection (reset|aborted|refused)",
    re.I,
)
TOO_LARGE = re.compile(
    r"(total )?request size .* must be less than or equal to|response size exceeds", re.I
)


def http_status(err: BaseException) -> int | None:
    """The HTTP status of an error or of the error it was raised from (ee wraps HttpError)."""
    for candidate in (err, err.__cause__, err.__context__):
        resp = getattr(candidate, "resp", None)
        status = getattr(resp, "status", None) or getattr(candidate, "status_code", None)
        if status is not None:
            return int(status)
    return None


def classify(err: BaseException) -> Literal["transient", "too_large", "permanent"]:
    message = str(err)
    if TOO_LARGE.search(message):
        return "too_large"
    status = http_status(err)
    if status is not None:
        return "transient" if status in TRANSIENT_STATUS else "permanent"
    if isinstance(err, ConnectionError | TimeoutError) or TRANSIENT_MESSAGES.search(message):
        return "transient"
    if type(err).__module__.startswith(("requests", "urllib3", "http.client", "socket")):
        return "transient"
    return "permanent"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 2.0
    max_delay_s: float = 120.0

    def delay(self, attempt: int, draw: float) -> float:
        """Exponential backoff with equal jitter: half the capped delay plus a random half."""
        cap = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return cap / 2 + draw * cap / 2


def with_retries(
    call: Callable[[], Any],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> Any:
    """Run `call`, retrying transient faults; other faults are raised at once."""
    for attempt in range(policy.max_attempts):
        try:
            return call()
        except Exception as err:
            if classify(err) != "transient" or attempt == policy.max_attempts - 1:
                raise
            wait = policy.delay(attempt, draw())
            log.warning(
                "transient error (attempt %d), retrying in %.1f s: %s",
                attempt + 1,
                wait,
                redact(str(err)),
            )
            sleep(wait)
    raise AssertionError("unreachable")
