"""A stack's receipt key, for `filegate receipt verify` without ``--public-key``.

The key is the stack's (output ``ReceiptKeyArn``), never the one a receipt names: a receipt
signed by any other key, however valid its signature, is not this stack's. Its public key is
read once through KMS GetPublicKey (``signing.ReceiptKey``) with the caller's credentials.
"""

from __future__ import annotations

from filegate.outputs import RECEIPT_KEY_ARN
from filegate.signing import PublicKey, ReceiptKey
from filegate.stackref import StackRef


def stack_public_key(ref: StackRef) -> PublicKey:
    """The public key of the stack's receipt key (KMS GetPublicKey)."""
    return ReceiptKey(ref.client("kms"), ref.output(RECEIPT_KEY_ARN)).public_key()
