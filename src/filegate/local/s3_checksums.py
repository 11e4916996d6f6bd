"""Makes the emulator verify S3 checksums, as S3 does.

moto stores the checksum a PUT declares (``x-amz-checksum-<algorithm>``) without computing
it (docs/local-mode.md), so a body that does not match would be kept with a false
checksum, and the ingestion, which trusts a full-object checksum S3 holds, would accept it.
S3 answers such a PUT with 400 BadDigest and stores nothing; so does the emulator with this.
Applied in the emulator process only, with the other patches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from filegate.local.patches.seams import Seams

_ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256")


def _verified(get_checksum: Callable[..., tuple[str, str | None]]) -> Callable[..., Any]:
    from moto.s3.exceptions import S3ClientError
    from moto.s3.utils import compute_checksum

    @functools.wraps(get_checksum)
    def wrapper(self: Any, response_headers: dict[str, Any]) -> tuple[str, str | None]:
        result = get_checksum(self, response_headers)
        for algorithm in _ALGORITHMS:
            declared = self.headers.get(f"x-amz-checksum-{algorithm.lower()}")
            if declared and compute_checksum(self.body or b"", algorithm).decode() != declared:
                raise S3ClientError(
                    "BadDigest",
                    f"The {algorithm} you specified did not match the calculated checksum.",
                )
        return result

    return wrapper


def patch(seams: Seams) -> None:
    """Install the check."""
    from moto.s3.responses import S3Response

    seams.replace(S3Response, "_get_checksum", _verified(S3Response._get_checksum))
