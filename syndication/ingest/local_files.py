"""Read a ``file:`` URL's bytes (an offline copy of a feed, or a mirrored portal):
``read_file_url``, which ``fetch.HttpFetcher`` runs in a thread.

What is read:

* never anything in a system folder (``/proc``, ``/sys``, ``/dev``: the process's
  environment with its secrets, the kernel's state, devices), and a link of a ``file:``
  listing only inside that listing's folder: ``netguard.file_problem`` checks what the
  URL says (decoded, normalised), then this module checks where its symlinks lead;
* only a regular file (a named pipe would block the thread for ever), at most one byte
  past the cap, opened without following a symlink put in place after the check.

``OSError`` passes through: ``fetch`` turns it into a ``FetchError`` with the others.
Must not: touch the network, parse content.
"""

from __future__ import annotations

import email.utils
import errno
import mimetypes
import os
from stat import S_ISDIR, S_ISREG

from syndication.errors import FetchError
from syndication.ingest.netguard import file_path, file_problem, in_system_folder, inside
from syndication.types import FetchResult


def read_file_url(url: str, *, listing: str | None, last_modified: str | None, max_bytes: int) -> FetchResult:
    """The bytes of the ``file:`` URL ``url``, or a 304 result when its modification time
    is still ``last_modified``. ``listing`` is the listing page that linked it, if any.

    Raises:
        FetchError: refused (see the module docstring), or larger than ``max_bytes``.
        OSError: it cannot be read (missing, a directory, not a regular file...).
    """
    if problem := file_problem(url, listing=listing):
        raise FetchError(problem, url=url)
    path = file_path(url)
    assert path is not None  # file_problem said it is a local absolute file URL
    listing_path = file_path(listing) if listing else None
    folder = os.path.dirname(listing_path) if listing_path else None
    content, modified = _read(url, path, folder, last_modified, max_bytes)
    if content is not None and len(content) > max_bytes:
        raise FetchError(f"file larger than {max_bytes} bytes: {path}", url=url)
    content_type = mimetypes.guess_type(path)[0]
    headers = {"last-modified": modified}
    if content_type:
        headers["content-type"] = content_type
    return FetchResult(
        url=url,
        status=200 if content is not None else 304,
        content=content or b"",
        headers=headers,
        last_modified=modified,
        content_type=content_type,
    )


def _read(
    url: str, path: str, folder: str | None, known: str | None, max_bytes: int
) -> tuple[bytes | None, str]:
    """The file's Last-Modified and content (``None`` when that matches ``known``)."""
    real = os.path.realpath(path)
    if folder is not None and not inside(real, os.path.realpath(folder)):
        raise FetchError(
            f"refused: {path} leads to {real}, outside the folder of the listing ({folder})", url=url
        )
    if in_system_folder(real):
        raise FetchError(f"refused: {path} leads to {real}, in a system folder", url=url)
    try:
        # No symlink may be put in place since realpath (O_NOFOLLOW); a pipe opens without waiting.
        descriptor = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        exc.filename = path  # the path asked for, not where it led
        raise
    stat = os.fstat(descriptor)
    if not S_ISREG(stat.st_mode):
        os.close(descriptor)
        if S_ISDIR(stat.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(descriptor, "rb") as file:
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if known == last_modified:
            return None, last_modified
        return file.read(max_bytes + 1), last_modified
