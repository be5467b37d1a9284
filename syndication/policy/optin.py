"""Rules of the public subscribe form that do not depend on the store: which mailbox an
address reaches (what subscribe limits count by) and which name a confirmation mail may
repeat.

Neither validates an address: that is the directory's and the mail component's job.
Pure: no I/O.
"""

from __future__ import annotations

import contextlib
import unicodedata
from typing import Final

import idna

from syndication.text import search_key

__all__ = ["GMAIL_DOMAINS", "MAX_GREETING_CHARS", "MAX_GREETING_WORDS", "greeting_name", "mailbox_key"]

GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})
"""One mailbox provider, two domains; it ignores dots in the local part."""

MAX_GREETING_WORDS: Final = 6
MAX_GREETING_CHARS: Final = 50
_NAME_PUNCTUATION: Final = frozenset(".'-\u2019")
_TITLES: Final = ("dong chi", "d c")
"""``search_key`` of a title people type before their name ("Đồng chí", "Đ/c")."""


def mailbox_key(address: str) -> str:
    """The mailbox ``address`` reaches as far as its form tells, for rate limits: provider-
    equivalent spellings of one mailbox give one key.

    - trimmed, NFC, lower-cased;
    - the domain in its ASCII (IDNA, UTS 46) form without a final dot, so that
      ``Bücher.example`` and ``xn--bcher-kva.example`` are one domain;
    - a ``+tag`` removed from the local part (sub-addressing: ``an+tin@`` reaches ``an@``);
    - Gmail: ``googlemail.com`` is ``gmail.com``, and dots in the local part do not count.

    Any text gets a key (a domain IDNA refuses is kept as written, lower-cased).
    """
    value = unicodedata.normalize("NFC", address.strip()).lower()
    local, at, domain = value.rpartition("@")
    if not at:
        return value
    domain = domain.rstrip(".")
    # A domain IDNA refuses (an underscore, an empty label) is compared as written.
    with contextlib.suppress(idna.IDNAError):
        domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    base = local.split("+", 1)[0]
    local = base or local  # "+x@" is its own name, not a tag
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def greeting_name(name: str) -> str:
    """The name a confirmation mail may greet with ("Kính gửi đồng chí <name>,"), or "" for
    the neutral greeting.

    The form is public: whoever fills it in writes the name, and the mail goes to an
    address they may not own. So only what looks like a person's name is repeated:
    words of letters (any script, with their marks) joined by spaces, with ``. ' -``
    inside names, at most ``MAX_GREETING_WORDS`` words and ``MAX_GREETING_CHARS``
    characters. A link, digits or a sentence get the neutral greeting. A title typed
    before the name ("Đồng chí", "Đ/c") is dropped: the greeting says it already.
    """
    words = unicodedata.normalize("NFC", name).split()
    for size in (1, 2):
        if len(words) >= size and search_key(" ".join(words[:size])) in _TITLES:
            words = words[size:]
            break
    cleaned = " ".join(words)
    if not words or len(words) > MAX_GREETING_WORDS or len(cleaned) > MAX_GREETING_CHARS:
        return ""
    for word in words:
        if not any(unicodedata.category(c).startswith("L") for c in word):
            return ""
        if not all(unicodedata.category(c)[0] in "LM" or c in _NAME_PUNCTUATION for c in word):
            return ""
    return cleaned
