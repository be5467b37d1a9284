"""The subscriber directory the publisher edits: read and check CSV or YAML, write CSV.

Pure: works on the bytes it is given and returns values; no store, no settings
object, no files opened here. ``parse_csv`` and ``parse_yaml`` report *every* bad
row at once, each with the physical line of the file it starts on (the header is
line 1; a quoted field that spans lines counts all of them), so the publisher can
fix the whole file in one pass. ``export_csv`` writes a file that Excel opens with
Vietnamese intact and that cannot run a formula when opened.

Files come from spreadsheets, so reading is forgiving about form and strict about
content. Accepted: UTF-8 with or without a BOM, UTF-16 (Excel's "Unicode text",
tab-separated), and ",", ";" (Excel in a Vietnamese locale) or tab as separator,
guessed from the header; English or Vietnamese column names in any case, with or
without diacritics ("Họ và tên", "ho va ten"). Checked: addresses (``addresses.parse``:
syntax and IDNA, no DNS), category slugs and digest names against the ones given,
status, field lengths, one address per file, one spelling and one parent per
organisation.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal, cast

import yaml

from syndication import addresses
from syndication.errors import AddressError, SyndicationError
from syndication.text import clean_line, search_key, tone_key
from syndication.types import SubscriberData, SubscriberStatus

FIELDS: Final = ("email", "name", "organisation", "parent", "categories", "digest", "status")
"""The columns, in the order ``export_csv`` writes them."""

DEFAULT_DIGEST: Final = "daily"
"""A row without a digest gets this one, when it is among the known digests."""

STATUSES: Final[tuple[SubscriberStatus, ...]] = ("active", "pending", "unsubscribed", "bounced")

LIMITS: Final[Mapping[str, int]] = {
    "email": 320,
    "name": 200,
    "organisation": 200,
    "parent": 200,
    "categories": 2000,
    "digest": 100,
    "status": 100,
}
"""Longest value accepted per column (characters, before spaces are tidied)."""

_ALIASES: Final[Mapping[str, str]] = {
    "email": "email|e-mail|mail|email address|địa chỉ email|địa chỉ thư điện tử|thư điện tử|hộp thư",
    "name": "name|display name|full name|tên|họ tên|họ và tên|tên hiển thị|người nhận",
    "organisation": "organisation|organization|branch|org|tổ chức|tổ chức đảng|đơn vị|chi bộ|cơ sở đảng",
    "parent": "parent|parent organisation|parent organization|cấp trên|tổ chức cấp trên|đơn vị cấp trên"
    "|đảng bộ cấp trên|trực thuộc",
    "categories": "categories|category|chuyên mục|danh mục|chủ đề",
    "digest": "digest|bản tin|loại bản tin",
    "status": "status|trạng thái|tình trạng",
}
"""Names a column may have, "|"-separated; case, diacritics and spaces do not matter."""


def _column_key(label: str) -> str:
    """Case, diacritics, spaces and punctuation do not matter in column names."""
    return search_key(label).replace(" ", "")


_COLUMN_BY_KEY: Final = {
    _column_key(alias): name for name, aliases in _ALIASES.items() for alias in aliases.split("|")
}
_ALL_CATEGORIES: Final = frozenset({"all", "tat ca"})
"""Search keys of a categories value that means "all" (the same as leaving it empty)."""
_CATEGORY_SEPARATORS: Final = re.compile(r"[;,\s]+")
_SEPARATORS: Final = (",", ";", "\t")

# Spreadsheets (Excel, LibreOffice, Google Sheets) read a cell that starts with one of
# these, even after spaces, as a formula: OWASP "CSV Injection" and ASVS 1.2.10 list
# = + - @ tab CR (and NUL); the full-width forms are there because some spreadsheet
# versions fold them to ASCII. A cell can also start inside a field when the
# spreadsheet splits on another separator than ours (Vietnamese-locale Excel splits a
# "," file on ";", and then a quoted line break ends the row), so a formula character
# after a separator or a line break is treated the same way.
_FORMULA_START: Final = "=+\\-@\t\r\0\uff1d\uff0b\uff0d\uff20"
# Quotes count like spaces in the look-ahead, so a value that already starts with the
# quote mark ("'=x") gets one more and reads back unchanged; so do double quotes, which a
# spreadsheet splitting on another separator may take off a piece ('"=x' read as '=x').
_NEEDS_QUOTE: Final = re.compile(rf"(?:^|(?<=[,;\t\r\n]))(?=[\s'\"]*[{_FORMULA_START}])")
_QUOTED: Final = re.compile(rf"(?:^|(?<=[,;\t\r\n]))'(?=[\s'\"]*[{_FORMULA_START}])")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One thing wrong in a directory file, located by physical line (header = 1)."""

    source: str
    """The file's name as the publisher knows it, e.g. ``subscribers/branches.csv``."""
    line: int
    column: str | None
    """The column (or YAML key) as the file writes it; ``None`` for the row or the file."""
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}:"
        if self.column:
            where += f" {self.column}:"
        return f"{where} {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed:
    """What a directory file holds: the good rows and every problem, sorted by line.

    ``rows`` leaves out each row that has a problem (for both rows of a duplicated
    address), so an import can refuse when ``problems`` is not empty, or go on with the
    good rows. Problems of the header (an unknown column) do not remove rows.
    """

    rows: tuple[SubscriberData, ...] = ()
    problems: tuple[RowProblem, ...] = ()
    lines: tuple[int, ...] = ()
    """The line each of ``rows`` starts on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportRow:
    """One row of ``export_csv``: a stored subscriber with its organisation's parent."""

    address: str
    display_name: str = ""
    organisation: str | None = None
    parent: str | None = None
    categories: tuple[str, ...] = ()
    digest: str = DEFAULT_DIGEST
    status: SubscriberStatus = "active"


class DirectoryError(SyndicationError):
    """``single_row`` was given a subscriber that does not pass the directory's checks.

    ``problems`` holds each problem (their ``line`` is 1, ``column`` the field's name).
    """

    def __init__(self, problems: tuple[RowProblem, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.column}: {p.message}" if p.column else p.message for p in problems))


@dataclass(slots=True)
class _Cell:
    value: str
    line: int
    label: str


@dataclass(slots=True)
class _Record:
    line: int
    end_line: int
    cells: dict[str, _Cell] = field(default_factory=dict)
    broken: bool = False
    """A problem of this row was already reported while reading it."""


def parse(data: bytes, *, source: str, categories: Collection[str], digests: Collection[str]) -> Parsed:
    """Read a directory file as YAML when ``source`` ends in ``.yaml`` or ``.yml``, else as CSV."""
    if source.lower().endswith((".yaml", ".yml")):
        return parse_yaml(data, source=source, categories=categories, digests=digests)
    return parse_csv(data, source=source, categories=categories, digests=digests)


def parse_csv(data: bytes, *, source: str, categories: Collection[str], digests: Collection[str]) -> Parsed:
    """Read and check a CSV directory: a header row, then one subscriber per row."""
    text = _decode(data)
    if isinstance(text, RowProblem):
        return Parsed(problems=(replace(text, source=source),))
    problems: list[RowProblem] = []
    records: list[_Record] = []
    columns: list[tuple[str | None, str]] | None = None  # (column, label) per position
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_guess_separator(text), skipinitialspace=True
    )
    previous = 0
    try:
        for cells in reader:
            start, previous = previous + 1, reader.line_num
            if not any(clean_line(cell) for cell in cells):
                continue
            if columns is None:
                columns = _header(cells, start, source, digests, problems)
                if columns is None:
                    return Parsed(problems=tuple(problems))
                continue
            records.append(_csv_record(cells, columns, start, previous, source, problems))
    except csv.Error as exc:
        problems.append(
            RowProblem(
                source, previous + 1, None, f"cannot read this line as CSV ({exc}); the rest was not read"
            )
        )
    if columns is None:
        problems.append(RowProblem(source, 1, None, _EMPTY))
    return _check(records, problems, source=source, categories=categories, digests=digests)


def parse_yaml(data: bytes, *, source: str, categories: Collection[str], digests: Collection[str]) -> Parsed:
    """Read and check a YAML directory: a list of mappings with the CSV's column names as
    keys (``categories`` may be a list), or a mapping with that list under ``subscribers``.
    """
    text = _decode(data)
    if isinstance(text, RowProblem):
        return Parsed(problems=(replace(text, source=source),))
    # The node tree of the safe loader (what yaml.safe_load builds its values from):
    # nodes keep their line numbers, and scalars are used as the text the file wrote,
    # so "status: on" is not True and "name: 0123" keeps its zero. Nothing is constructed.
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if isinstance(mark, yaml.Mark) else 1
        reason = getattr(exc, "problem", None) or str(exc)
        return Parsed(problems=(RowProblem(source, line, None, f"this is not valid YAML: {reason}"),))
    problems: list[RowProblem] = []
    if root is None:
        return Parsed(problems=(RowProblem(source, 1, None, _EMPTY_YAML),))
    items = _yaml_items(root, source, problems)
    records = [record for item in items if (record := _yaml_record(item, source, problems)) is not None]
    return _check(records, problems, source=source, categories=categories, digests=digests)


def single_row(
    *,
    address: str,
    display_name: str = "",
    organisation: str | None = None,
    parent: str | None = None,
    categories: Iterable[str] = (),
    digest: str = DEFAULT_DIGEST,
    status: str = "active",
    known_categories: Collection[str],
    known_digests: Collection[str],
) -> SubscriberData:
    """One subscriber given field by field (``subscribers add``), checked like a file row.

    Raises:
        DirectoryError: any value is bad; every problem is in the message.
    """
    values = {
        "email": address,
        "name": display_name,
        "organisation": organisation or "",
        "parent": parent or "",
        "categories": ";".join(categories),
        "digest": digest,
        "status": status,
    }
    record = _Record(line=1, end_line=1, cells={k: _Cell(v, 1, k) for k, v in values.items()})
    parsed = _check([record], [], source="", categories=known_categories, digests=known_digests)
    if parsed.problems:
        raise DirectoryError(parsed.problems)
    return parsed.rows[0]


def export_csv(
    subscribers: Iterable[ExportRow | SubscriberData], *, delimiter: Literal[",", ";", "\t"] = ","
) -> bytes:
    """The directory as CSV: UTF-8 with a BOM, a header row, CRLF line ends, and every
    field that a spreadsheet would take for a formula made inert with ``escape_formula``.

    ``parse_csv`` reads it back to the same rows. Excel in a Vietnamese locale splits
    columns on ";", so ``delimiter=";"`` makes a file it opens by double-click.
    """
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(FIELDS)
    joiner = "," if delimiter == ";" else ";"
    for s in subscribers:
        parent = s.parent if isinstance(s, ExportRow) else s.organisation_parent
        values = (
            s.address,
            s.display_name,
            s.organisation or "",
            parent or "",
            joiner.join(s.categories),
            s.digest,
            s.status,
        )
        writer.writerow([escape_formula(value) for value in values])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def normalise_address(value: str) -> str:
    """The address as we store it: syntax-checked, NFC, lower-cased, the domain in its
    Unicode form (internationalised domains are fine). No DNS lookups.

    Raises:
        ValueError: not a usable address; the message says why, for people.
    """
    value = clean_line(value, limit=LIMITS["email"] + 1)
    try:
        # The one rule for addresses (``addresses.parse``): no diacritics before the @,
        # nothing shaped like an encoded word, the domain checked with IDNA.
        return addresses.parse(value).stored
    except AddressError as exc:
        raise ValueError(f"{_show(value)} is not a valid e-mail address ({exc.reason})") from exc


def escape_formula(value: str) -> str:
    """Put a single quote before a formula character (= + - @ tab CR...) that starts the
    value or follows a separator (, ; tab) or a line break, spaces allowed between, so
    that a spreadsheet shows the text instead of running it. For every CSV we write."""
    return _NEEDS_QUOTE.sub("'", value)


def unescape_formula(value: str) -> str:
    """Undo ``escape_formula`` (a quote before a formula character is the spreadsheet's
    "this is text" mark, and Excel itself writes it back that way)."""
    return _QUOTED.sub("", value)


# --- reading ------------------------------------------------------------------------------

_EMPTY = (
    'the file is empty: the first line must be a header such as "email,name,organisation,parent,'
    'categories,digest,status"'
)
_EMPTY_YAML = 'the file is empty: write a list of entries such as "- email: bithu@example.org"'
_BOMS: Final = (  # UTF-32 first: its little-endian BOM starts like UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _decode(data: bytes) -> str | RowProblem:
    """The text of the file, or a problem (with an empty source) saying why it is not text."""
    encoding = None
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
            break
    if encoding is None and len(data) >= 2 and b"\x00" in data:
        # UTF-16 without a BOM: ASCII letters leave a NUL in every other byte.
        even, odd = data[0::2].count(0), data[1::2].count(0)
        if max(even, odd) * 2 >= len(data) // 2:
            encoding = "utf-16-le" if odd > even else "utf-16-be"
    encoding = encoding or "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        byte = data[exc.start : exc.start + 1].hex().upper()
        if encoding == "utf-8":
            name = "UTF-8"
            hint = (
                'save it as UTF-8 (in Excel: "Save As", type "CSV UTF-8 (Comma delimited)"); '
                "old Vietnamese encodings (Windows-1258, TCVN3, VNI) are not read"
            )
        else:
            name, hint = encoding.upper(), "the file is damaged"
        return RowProblem("", line, None, f"the file is not {name} text (byte 0x{byte}): {hint}")


def _guess_separator(text: str) -> str:
    """The separator that splits the header into the most known columns (then the most columns)."""
    first = next((line for line in text.splitlines() if line.strip()), "")

    def score(separator: str) -> tuple[int, int, int]:
        cells = next(csv.reader([first], delimiter=separator), [])
        known = sum(_column_key(cell) in _COLUMN_BY_KEY for cell in cells)
        return known, len(cells), -_SEPARATORS.index(separator)

    return max(_SEPARATORS, key=score)


def _known_columns() -> str:
    return ", ".join(FIELDS) + ' (Vietnamese names such as "Họ và tên" or "Chi bộ" work too)'


def _column_of(
    label: str, line: int, source: str, seen: dict[str, str], problems: list[RowProblem], kind: str = "column"
) -> str | None:
    """The column a header cell or YAML key names; a problem when unknown or repeated."""
    column = _COLUMN_BY_KEY.get(_column_key(label))
    if column is None:
        close = difflib.get_close_matches(_column_key(label), _COLUMN_BY_KEY, n=1, cutoff=0.75)
        hint = f'; did you mean "{_COLUMN_BY_KEY[close[0]]}"?' if close else ""
        problems.append(
            RowProblem(source, line, label, f"unknown {kind}; the {kind}s are {_known_columns()}{hint}")
        )
        return None
    if column in seen:
        problems.append(RowProblem(source, line, label, f'names the same {kind} as "{seen[column]}"'))
        return None
    seen[column] = label
    return column


def _header(
    cells: list[str], line: int, source: str, digests: Collection[str], problems: list[RowProblem]
) -> list[tuple[str | None, str]] | None:
    """(column, label) for each header cell, or None when a required column is missing."""
    seen: dict[str, str] = {}
    columns: list[tuple[str | None, str]] = []
    for cell in cells:
        label = clean_line(cell, limit=100)
        columns.append((_column_of(label, line, source, seen, problems) if label else None, label))
    missing = [name for name in _required(digests) if name not in seen]
    for name in missing:
        why = (
            f' (there is no "{DEFAULT_DIGEST}" digest to use when it is left out)' if name == "digest" else ""
        )
        problems.append(RowProblem(source, line, None, f'the column "{name}" is missing{why}'))
    return None if missing else columns


def _required(digests: Collection[str]) -> tuple[str, ...]:
    return ("email",) if DEFAULT_DIGEST in digests else ("email", "digest")


def _csv_record(
    cells: list[str],
    columns: list[tuple[str | None, str]],
    start: int,
    end: int,
    source: str,
    problems: list[RowProblem],
) -> _Record:
    record = _Record(line=start, end_line=end)
    cells = cells + [""] * (len(columns) - len(cells))  # a short row: the rest is empty
    for position, cell in enumerate(cells):
        if position >= len(columns):
            if clean_line(cell):
                problems.append(
                    RowProblem(
                        source,
                        start,
                        None,
                        f"this row has {len(cells)} cells but the header names {len(columns)}",
                    )
                )
                record.cells.clear()
                break
            continue
        column, label = columns[position]
        if column is not None:
            record.cells[column] = _Cell(unescape_formula(cell), start, label)
        elif not label and clean_line(cell):
            problems.append(
                RowProblem(
                    source, start, None, f"column {position + 1} has a value but no name in the header"
                )
            )
            record.broken = True
    return record


def _yaml_items(root: yaml.Node, source: str, problems: list[RowProblem]) -> list[yaml.Node]:
    if isinstance(root, yaml.MappingNode):
        found: yaml.Node | None = None
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "subscribers":
                found = value
            else:
                line = key.start_mark.line + 1
                problems.append(RowProblem(source, line, None, 'the only top-level key is "subscribers"'))
        if found is None:
            problems.append(
                RowProblem(source, root.start_mark.line + 1, None, 'the key "subscribers" is missing')
            )
            return []
        root = found
    if not isinstance(root, yaml.SequenceNode):
        line = root.start_mark.line + 1
        problems.append(RowProblem(source, line, None, 'expected a list of entries ("- email: ...")'))
        return []
    return list(root.value)


_YAML_TEXT_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "null", "bool", "int", "float", "timestamp")
)
"""Scalars a safe loader would read; others (``!!python/...``, ``!!binary``) are refused."""


def _yaml_text(node: yaml.Node) -> str | None:
    """A scalar as the file wrote it; None for anything that is not plain text."""
    if not isinstance(node, yaml.ScalarNode) or node.tag not in _YAML_TEXT_TAGS:
        return None
    return "" if node.tag == "tag:yaml.org,2002:null" else str(node.value)


def _yaml_record(item: yaml.Node, source: str, problems: list[RowProblem]) -> _Record | None:
    line = item.start_mark.line + 1
    if not isinstance(item, yaml.MappingNode):
        problems.append(
            RowProblem(source, line, None, "each entry must be a mapping (email: ..., name: ...)")
        )
        return None
    record = _Record(line=line, end_line=item.end_mark.line + 1)
    seen: dict[str, str] = {}
    for key, node in item.value:
        key_text = _yaml_text(key)
        key_line = key.start_mark.line + 1
        column = _column_of(key_text or "?", key_line, source, seen, problems, "key")
        if column is None:
            # An unknown key is like an unknown CSV column; a repeated one makes the entry unclear.
            record.broken = record.broken or _column_key(key_text or "") in _COLUMN_BY_KEY
            continue
        value_line = node.start_mark.line + 1
        if column == "categories" and isinstance(node, yaml.SequenceNode):
            parts = [_yaml_text(element) for element in node.value]
            text = None if None in parts else ";".join(cast(list[str], parts))
        else:
            text = _yaml_text(node)
        if text is None:
            problems.append(RowProblem(source, value_line, key_text, "must be text"))
            record.cells.clear()
            return record
        record.cells[column] = _Cell(text, value_line, key_text or "?")
    return record


# --- checking -----------------------------------------------------------------------------


def _show(value: str) -> str:
    return json.dumps(value if len(value) <= 80 else value[:79] + "…", ensure_ascii=False)


def _one_of(known: Iterable[str]) -> str:
    names = sorted(known)
    return ", ".join(names) if names else "none are configured"


@dataclass(slots=True)
class _Checker:
    source: str
    categories: Mapping[str, str]
    digests: Mapping[str, str]
    problems: list[RowProblem]
    bad: bool = False

    def problem(self, cell: _Cell | None, line: int, message: str) -> None:
        self.bad = True
        self.problems.append(
            RowProblem(self.source, cell.line if cell else line, cell.label if cell else None, message)
        )

    def text(self, record: _Record, column: str, *, line_breaks: bool = True) -> str | None:
        """The cell tidied (NFC, spaces; "" when absent), or None after reporting a problem."""
        cell = record.cells.get(column)
        if cell is None:
            return ""
        if len(cell.value) > LIMITS[column]:
            self.problem(
                cell, record.line, f"is {len(cell.value)} characters long; at most {LIMITS[column]} fit"
            )
            return None
        if not line_breaks and ("\n" in cell.value or "\r" in cell.value):
            runs = f"runs from line {record.line} to line {record.end_line}: is a closing quote missing?"
            self.problem(cell, record.line, f"contains a line break (the row {runs})")
            return None
        return clean_line(cell.value, limit=LIMITS[column])

    def address(self, record: _Record) -> str | None:
        cell = record.cells.get("email")
        value = self.text(record, "email", line_breaks=False)
        if value is None:
            return None
        if not value:
            what = "is empty" if cell else 'the entry has no "email"'
            self.problem(cell, record.line, f"{what}: every row needs an e-mail address")
            return None
        try:
            return normalise_address(value)
        except ValueError as exc:
            self.problem(cell, record.line, str(exc))
            return None

    def category_list(self, record: _Record) -> tuple[str, ...]:
        cell = record.cells.get("categories")
        value = self.text(record, "categories", line_breaks=False)
        if cell is None or value is None or value == "*" or search_key(value) in _ALL_CATEGORIES:
            return ()
        found: set[str] = set()
        for slug in filter(None, _CATEGORY_SEPARATORS.split(value)):
            known = self.categories.get(slug.casefold())
            if known is not None:
                found.add(known)
                continue
            close = difflib.get_close_matches(slug.casefold(), self.categories, n=1, cutoff=0.6)
            hint = f'; did you mean "{self.categories[close[0]]}"?' if close else ""
            known_list = _one_of(self.categories.values())
            self.problem(cell, record.line, f"unknown category {_show(slug)} (known: {known_list}){hint}")
        return tuple(sorted(found))

    def digest(self, record: _Record) -> str:
        cell = record.cells.get("digest")
        value = self.text(record, "digest", line_breaks=False)
        if value is None:
            return ""
        if not value:
            if DEFAULT_DIGEST in self.digests.values():
                return DEFAULT_DIGEST
            what = "is empty" if cell else 'the entry has no "digest"'
            self.problem(cell, record.line, f"{what}: choose one of {_one_of(self.digests.values())}")
            return ""
        known = self.digests.get(value.casefold())
        if known is None:
            self.problem(
                cell, record.line, f"unknown digest {_show(value)} (known: {_one_of(self.digests.values())})"
            )
            return ""
        return known

    def status(self, record: _Record) -> SubscriberStatus:
        cell = record.cells.get("status")
        value = (self.text(record, "status", line_breaks=False) or "").casefold()
        if not value:
            return "active"
        if value in STATUSES:
            return value
        self.problem(cell, record.line, f"unknown status {_show(value)} (use {', '.join(STATUSES)})")
        return "active"


def _check(
    records: list[_Record],
    problems: list[RowProblem],
    *,
    source: str,
    categories: Collection[str],
    digests: Collection[str],
) -> Parsed:
    """Check each record, then what rows must agree on; good rows become ``SubscriberData``."""
    checker = _Checker(
        source=source,
        categories={slug.casefold(): slug for slug in categories},
        digests={name.casefold(): name for name in digests},
        problems=problems,
    )
    good: list[tuple[SubscriberData, int]] = []  # (row, line)
    bad_lines: set[int] = set()
    addresses: dict[str, list[_Record]] = {}
    spellings: dict[str, tuple[str, int]] = {}  # tone_key -> (first spelling, its line)
    parents: dict[str, tuple[str, int]] = {}  # organisation -> (parent, line that says so)
    for record in records:
        if not record.cells:
            continue  # a row the reader already reported as a whole
        checker.bad = False
        address = checker.address(record)
        name = checker.text(record, "name") or ""
        organisation = checker.text(record, "organisation") or None
        parent = checker.text(record, "parent") or None
        _check_organisation(checker, record, organisation, parent, spellings, parents)
        row_categories = checker.category_list(record)
        digest = checker.digest(record)
        status = checker.status(record)
        if address is not None:
            addresses.setdefault(address, []).append(record)
        if checker.bad or record.broken or address is None:
            bad_lines.add(record.line)
            continue
        row = SubscriberData(
            address=address,
            display_name=name,
            organisation=organisation,
            organisation_parent=parent,
            categories=row_categories,
            digest=digest,
            status=status,
        )
        good.append((row, record.line))
    for address, seen in addresses.items():
        if len(seen) < 2:
            continue
        cells = [record.cells["email"] for record in seen]
        others = ", ".join(str(cell.line) for cell in cells[1:])
        checker.problem(cells[0], seen[0].line, f"{_show(address)} appears again on line {others}")
        for cell in cells[1:]:
            checker.problem(cell, cell.line, f"{_show(address)} is already on line {cells[0].line}")
        bad_lines.update(record.line for record in seen)
    kept = [(row, line) for row, line in good if line not in bad_lines]
    problems.sort(key=lambda p: p.line)
    return Parsed(
        rows=tuple(_with_parent(row, parents) for row, _ in kept),
        problems=tuple(problems),
        lines=tuple(line for _, line in kept),
    )


def _check_organisation(
    checker: _Checker,
    record: _Record,
    organisation: str | None,
    parent: str | None,
    spellings: dict[str, tuple[str, int]],
    parents: dict[str, tuple[str, int]],
) -> None:
    """One spelling per organisation (else the report shows two branches) and one parent."""
    for column, name in (("organisation", organisation), ("parent", parent)):
        key = tone_key(name or "")
        if not key or name is None:
            continue
        first, line = spellings.setdefault(key, (name, record.cells[column].line))
        if first != name:
            checker.problem(
                record.cells[column],
                record.line,
                f"{_show(name)} is written {_show(first)} on line {line}: write it the same way everywhere",
            )
    if parent is None:
        return
    cell = record.cells["parent"]
    if organisation is None:
        checker.problem(cell, record.line, "a parent is given but the organisation is empty")
    elif tone_key(parent) == tone_key(organisation):
        checker.problem(cell, record.line, f"{_show(parent)} cannot be the parent of itself")
    else:
        known, line = parents.setdefault(organisation, (parent, cell.line))
        if known != parent:
            checker.problem(
                cell, record.line, f"{_show(organisation)} has the parent {_show(known)} on line {line}"
            )


def _with_parent(row: SubscriberData, parents: Mapping[str, tuple[str, int]]) -> SubscriberData:
    """Rows of one organisation all carry the parent that any of them gives."""
    if row.organisation is None or row.organisation_parent is not None or row.organisation not in parents:
        return row
    return replace(row, organisation_parent=parents[row.organisation][0])
