"""A cheap upper bound on JSON nesting depth, checked before any parser sees the body.

Deeply nested JSON makes recursive parsers and validators (stdlib ``json``, pydantic, the FHIR
models) slow or crash them with ``RecursionError``. Parsing the body only to measure its depth
would cost as much as the parse we want to protect, and a Python loop over every byte costs
several milliseconds for a 66 KB prefetch. Every step below is one C-level pass over the bytes
(``re.sub``, ``bytes.translate``, ``bytes.replace``), so the check costs a fraction of a
millisecond (measured in ``tests/security/test_request_limits.py``).
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

# A backslash and the byte after it: one JSON escape. Removing escapes first leaves every `"` a
# real string delimiter (`\\"` is an escaped backslash then a closing quote: handled because the
# scan runs left to right).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_KEEP = b'"[]{}'
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
# Depth does not care whether a container is an object or an array.
_UNIFY = bytes.maketrans(b"{}", b"[]")
_SIGNED = bytes.maketrans(b"[]", b"\x01\xff")  # +1 / -1 as signed bytes
# Above this many brackets, peeling (cost: depth x length) gives way to one linear prefix sum.
_PEEL_MAX_BYTES = 64 * 1024


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when ``body`` nests arrays/objects more than ``limit`` deep (scalars: depth 0).

    Brackets inside strings do not count. Malformed JSON (unbalanced brackets, an unterminated
    string) gets a rough measure, which is harmless: the parser refuses it anyway.
    """
    brackets = _brackets_outside_strings(body)
    if brackets.count(b"[") <= limit:
        return False
    if len(brackets) > _PEEL_MAX_BYTES:
        return _max_prefix_depth(brackets) > limit
    return _peeled_depth(brackets, limit) > limit


def _brackets_outside_strings(body: bytes) -> bytes:
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    kept = body.translate(_UNIFY, _DELETE)
    # Quotes now alternate open/close with only brackets between them. Dropping adjacent pairs
    # removes every string without brackets in it (most of them) and merges neighbours, which
    # keeps the alternation; the few strings left are cut out by splitting on the quotes.
    kept = kept.replace(b'""', b"")
    if b'"' in kept:
        kept = b"".join(kept.split(b'"')[::2])
    return kept


def _peeled_depth(brackets: bytes, limit: int) -> int:
    """Depth by removing innermost ``[]`` pairs: each pass removes exactly one level."""
    peeled = 0
    while peeled <= limit:
        reduced = brackets.replace(b"[]", b"")
        if len(reduced) == len(brackets):
            break
        brackets = reduced
        peeled += 1
    # Whatever is left is unbalanced; count its openers as if they all nested (an upper bound).
    return peeled + brackets.count(b"[")


def _max_prefix_depth(brackets: bytes) -> int:
    signed = array("b")
    signed.frombytes(brackets.translate(_SIGNED))
    return max(accumulate(signed), default=0)
