"""ListObjectVersions without a copy of every object's bytes, in the emulator process only.

moto 5.2.5's ``list_object_versions`` deep-copies every version of every key in the bucket
(to mark ``IsLatest`` on copies), and a key's deep copy goes through its ``__getstate__``,
which reads the whole object into memory, then writes it into the copy's own buffer: each
call, whatever its prefix or ``MaxKeys``, holds twice the bucket's bytes for a moment.
Measured in process, one listing of a bucket holding one 512 MiB object peaked at +1,024 MiB
(benchmarks/listing_memory.py; docs/aws-fidelity.md, "Lifecycle, versions and retention"), so
`filegate reconcile` of a bucket with a few multi-GiB objects, or a benchmark's clean-up
between runs, could exhaust the machine where S3's listing reads metadata only.

The seam gives moto's key a ``__deepcopy__`` for that copy: every attribute deep-copied as
moto's copy has it, except the bytes, which stay with the key (the copy gets an empty buffer;
the listing reads names, versions, sizes, ETags and dates only). The ETag, which moto computes
from the bytes when the key has none yet, is computed on the key first, as the copy would
have computed it. Nothing else in moto deep-copies a key; pickling (``__getstate__``) is
unchanged.
"""

from __future__ import annotations

import copy
import io
import threading
from typing import Any

from filegate.local.patches.seams import Seams

_NOT_COPIED = frozenset({"_value_buffer", "lock"})


def _copy_without_bytes(self: Any, memo: dict[int, Any]) -> Any:
    """A deep copy of moto's ``FakeKey`` that shares no state with it and holds no bytes."""
    _ = self.etag  # moto computes a missing ETag from the bytes: here, not on an empty copy
    kind: Any = type(self)
    duplicate = kind.__new__(kind)  # moto's __new__ tracks the instance, as for its own copy
    memo[id(self)] = duplicate
    state = {name: value for name, value in vars(self).items() if name not in _NOT_COPIED}
    duplicate.__dict__.update(copy.deepcopy(state, memo))
    duplicate._value_buffer = io.BytesIO()  # closed when moto disposes of the copy
    duplicate.lock = threading.Lock()
    return duplicate


def patch(seams: Seams) -> None:
    """Install the copy without bytes."""
    from moto.s3 import models

    seams.replace(models.FakeKey, "__deepcopy__", _copy_without_bytes)
