"""moto's per-request framework work made cheaper, for every service, in the emulator only.

Every request moto serves pays for work that does not depend on the request: measured on a
GetItem of a missing key (in-process, werkzeug's test client, thread CPU time), a quarter of
moto's own time went to two things:

- ``BaseResponse.call_action`` lists the response class's methods with ``inspect.getmembers``
  (~120 attributes, each checked) to see whether the action has a handler; the list depends on
  the class only, so it is computed once per class;
- the ``x-amzn-requestid`` of every response is 52 characters drawn one ``random.choice`` at a
  time; it is now drawn as 52 random bytes at once, mapped onto the same 62 letters and digits,
  from the same seeded generator (moto's ``/moto-api/seed`` still makes ids reproducible).

Results are moto's: the same method list, ids of the same length and alphabet.
"""

from __future__ import annotations

import functools
import string
from typing import Any

from filegate.local.patches.seams import Seams

REQUEST_ID_LENGTH = 52
_ALPHABET = (string.ascii_letters + string.digits).encode()
# Byte -> one of the 62 characters (256 % 62 leaves a bias of 1/62 for a few letters: an id
# only has to be unique, as moto's are).
_BYTE_TO_CHAR = bytes(_ALPHABET[b % len(_ALPHABET)] for b in range(256))


def request_id(headers: dict[str, Any] | None = None) -> str:
    """moto's ``gen_amzn_requestid_long``, with the random string drawn in one call."""
    from moto.moto_api._internal import mock_random

    req_id = mock_random.randbytes(REQUEST_ID_LENGTH).translate(_BYTE_TO_CHAR).decode("ascii")
    if isinstance(headers, dict):
        headers["x-amzn-requestid"] = req_id
    return req_id


def patch(seams: Seams) -> None:
    """Install both."""
    from moto.core import responses, utils
    from moto.utilities import aws_headers

    cached = functools.cache(utils.method_names_from_class)
    # moto's modules import these names into their namespaces, so replace them where used.
    seams.replace(responses, "method_names_from_class", cached)
    seams.replace(responses, "gen_amzn_requestid_long", request_id)
    seams.replace(aws_headers, "gen_amzn_requestid_long", request_id)
