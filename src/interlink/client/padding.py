"""Length buckets for encrypted payloads, so that neither a proxy nor the hub learns a message's
length from its ciphertext.

A plaintext of ``n`` bytes is padded to :func:`bucket` ``(n)``: the next power of two from
:data:`MIN_BUCKET` up to :data:`STEP` (4 KiB), then the next multiple of 4 KiB. An observer learns
only the bucket: a one-word reply and a 200-character message look alike, and long texts are
known to within 4 KiB. The padding lives *inside* the encrypted payload (OMEMO 2: the SCE
``<rpad/>`` element, XEP-0420 §3), so nothing on the wire says where the content ends.

Legacy OMEMO (``eu.siacs.conversations.axolotl``) is not padded: its payload is the message text
itself, with no envelope and no padding field, and every other client of that profile
(Conversations, Gajim, Dino…) shows what it decrypts; a padded text would be shown padded. Legacy
ciphertexts therefore leak the text's length to the byte (AES-GCM adds no block rounding). The SDK
encrypts to a peer's device with OMEMO 2 whenever the device announces it.
"""

from __future__ import annotations

MIN_BUCKET = 64
STEP = 4096


def bucket(n: int) -> int:
    """The padded length of ``n`` bytes (``n`` itself when ``n`` is a bucket).

    Raises:
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError("a length cannot be negative")
    if n > STEP:
        return -(-n // STEP) * STEP
    size = MIN_BUCKET
    while size < n:
        size *= 2
    return size
