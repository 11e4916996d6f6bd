"""The upload API's settings: required names, defaults, and bad values naming the variable."""

from __future__ import annotations

import pytest

from filegate.errors import ConfigError
from filegate.settings import UploadApiSettings

REQUIRED = {"DDB_TABLE": "ledger", "PARTNERS_TABLE": "partners", "UPLOAD_BUCKET": "bucket"}


def test_defaults() -> None:
    settings = UploadApiSettings.from_env(REQUIRED)

    assert settings == UploadApiSettings("ledger", "partners", "bucket", 67108864, 900)


def test_values_from_the_environment() -> None:
    env = {**REQUIRED, "MULTIPART_THRESHOLD_BYTES": "1048576", "PRESIGN_EXPIRY_SECONDS": "60"}

    settings = UploadApiSettings.from_env(env)

    assert (settings.multipart_threshold, settings.presign_expiry_seconds) == (1048576, 60)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_missing_name_is_named(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        UploadApiSettings.from_env({k: v for k, v in REQUIRED.items() if k != name})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MULTIPART_THRESHOLD_BYTES", "lots"),
        ("MULTIPART_THRESHOLD_BYTES", "0"),
        ("MULTIPART_THRESHOLD_BYTES", str(5 * 1024**3 + 1)),
        ("PRESIGN_EXPIRY_SECONDS", "-1"),
        ("PRESIGN_EXPIRY_SECONDS", "604801"),
        ("PRESIGN_EXPIRY_SECONDS", "3601"),  # past what the execution role's session allows
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        UploadApiSettings.from_env({**REQUIRED, name: value})
