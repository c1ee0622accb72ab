"""What length padding costs: for message texts of typical lengths, the SCE envelope before
padding, the padded envelope, and the OMEMO 2 <payload/> on the wire (AES-256-CBC with PKCS#7,
then base64, XEP-0384 §5). Prints a Markdown table (docs/performance.md quotes it)."""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path
from xml.etree.ElementTree import Element

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from interlink.client import sce

LENGTHS = (1, 10, 40, 100, 200, 500, 1000, 2000, 4000, 10000)
SENDER, RECIPIENT = "4915112345678@hub.example", "k3j4h5g6f7d8s9a0@examplechat.interop.hub.example"


def payload_bytes(plaintext: int) -> int:
    """base64 of AES-CBC with PKCS#7 (XEP-0384 §5: the payload encrypts the SCE envelope)."""
    padded = (plaintext // 16 + 1) * 16
    return 4 * -(-padded // 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="the same run: it takes well under a second"
    )
    parser.parse_args()
    print(
        "| text (chars) | envelope unpadded | padded (bucket) | extra bytes"
        + " | payload on the wire | unpadded payload |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    extras = []
    for n in LENGTHS:
        body = Element(sce.BODY)
        body.text = "x" * n
        data = sce.seal([body], sender=SENDER, recipient=RECIPIENT, now=1.8e9)
        pad = re.search(rb"<rpad>(.*)</rpad>", data)
        assert pad is not None
        unpadded = len(data) - len(pad.group(1))
        extra = len(data) - unpadded
        extras.append(extra / unpadded)
        print(
            f"| {n} | {unpadded} | {len(data)} | {extra} | {payload_bytes(len(data))} "
            f"| {payload_bytes(unpadded)} |"
        )
    print(f"\nmedian overhead {statistics.median(extras):.0%}, max {max(extras):.0%}")


if __name__ == "__main__":
    main()
