"""Helpers for tests that need Vietnamese text in legacy encodings."""

from __future__ import annotations

import unicodedata

TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}
"""The five tone marks (grave, acute, tilde, hook above, dot below) as combining characters."""


def encode_cp1258(text: str) -> bytes:
    """windows-1258 has the vowel letters (â, ơ, ư...) but writes tones as combining marks."""
    out = []
    for char in text:
        decomposed = unicodedata.normalize("NFD", char)
        base = "".join(c for c in decomposed if c not in TONES)
        tone = "".join(c for c in decomposed if c in TONES)
        out.append(unicodedata.normalize("NFC", base) + tone)
    return "".join(out).encode("cp1258")
