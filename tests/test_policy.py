"""The pure rules of ``syndication.policy``: the subscriber lifecycle, and the public form's
mailbox key and greeting, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syndication.policy import lifecycle
from syndication.policy.lifecycle import Step, confirmation_state, request_open, stale_request, step
from syndication.policy.optin import greeting_name, mailbox_key
from syndication.types import SubscriberStatus

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
STATUSES: tuple[SubscriberStatus, ...] = ("pending", "active", "unsubscribed", "bounced")

# --- the lifecycle --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "event", "wanted", "request_open", "expected"),
    [
        # The public form: a request beside the status, never an activation.
        (None, "subscribe", "active", False, Step(status="pending", request="open")),
        ("pending", "subscribe", "active", True, Step(status="pending", request="open")),
        ("unsubscribed", "subscribe", "active", False, Step(status="unsubscribed", request="open")),
        ("active", "subscribe", "active", False, Step(status="active")),
        ("bounced", "subscribe", "active", False, Step(status="bounced")),
        # The person's button.
        ("pending", "confirm", "active", True, Step(status="active", request="close")),
        ("unsubscribed", "confirm", "active", True, Step(status="active", request="close")),
        ("active", "confirm", "active", False, Step(status="active")),
        ("pending", "confirm", "active", False, Step(status="pending", refused=True)),
        ("unsubscribed", "confirm", "active", False, Step(status="unsubscribed", refused=True)),
        ("bounced", "confirm", "active", True, Step(status="bounced", refused=True)),
        # The directory: decides for addresses that never said no.
        (None, "import", "active", False, Step(status="active")),
        (None, "import", "pending", False, Step(status="pending")),
        ("pending", "import", "active", True, Step(status="active", request="close")),
        ("pending", "import", "pending", True, Step(status="pending")),
        ("active", "import", "unsubscribed", False, Step(status="unsubscribed", request="close")),
        ("active", "import", "pending", False, Step(status="pending")),
        ("active", "import", "bounced", False, Step(status="bounced", request="close")),
        ("unsubscribed", "import", "active", True, Step(status="unsubscribed", kept=True)),
        ("unsubscribed", "import", "pending", False, Step(status="unsubscribed", kept=True)),
        ("unsubscribed", "import", "unsubscribed", False, Step(status="unsubscribed")),
        ("bounced", "import", "active", False, Step(status="bounced", kept=True)),
        ("bounced", "import", "unsubscribed", False, Step(status="bounced", kept=True)),
        # `subscribers add`: a row that is active, whatever it says.
        (None, "add", "pending", False, Step(status="active")),
        ("pending", "add", "pending", False, Step(status="active", request="close")),
        ("unsubscribed", "add", "unsubscribed", True, Step(status="unsubscribed", kept=True)),
        ("bounced", "add", "active", False, Step(status="bounced", kept=True)),
        # Unsubscribing: from anywhere, closing any request.
        ("pending", "unsubscribe", "active", True, Step(status="unsubscribed", request="close")),
        ("active", "unsubscribe", "active", False, Step(status="unsubscribed", request="close")),
        ("unsubscribed", "unsubscribe", "active", True, Step(status="unsubscribed", request="close")),
        ("bounced", "unsubscribe", "active", False, Step(status="unsubscribed", request="close")),
        # Bounces: the person's own word is the stronger one.
        ("pending", "bounce", "active", True, Step(status="bounced", request="close")),
        ("active", "bounce", "active", False, Step(status="bounced", request="close")),
        ("unsubscribed", "bounce", "active", True, Step(status="unsubscribed")),
        ("bounced", "bounce", "active", False, Step(status="bounced")),
    ],
)
def test_lifecycle(
    current: SubscriberStatus | None,
    event: lifecycle.Event,
    wanted: SubscriberStatus,
    request_open: bool,
    expected: Step,
) -> None:
    assert step(current, event, wanted=wanted, request_open=request_open) == expected


@pytest.mark.parametrize("event", ["confirm", "unsubscribe", "bounce"])
def test_events_that_need_a_stored_address(event: lifecycle.Event) -> None:
    with pytest.raises(ValueError, match=f"{event} needs a stored subscriber"):
        step(None, event)


EVENTS_BUT_CONFIRM = [event for event in lifecycle.EVENTS if event != "confirm"]


@given(
    start=st.sampled_from(["unsubscribed", "bounced"]),
    events=st.lists(
        st.tuples(st.sampled_from(EVENTS_BUT_CONFIRM), st.sampled_from(STATUSES), st.booleans()),
        max_size=12,
    ),
)
def test_only_the_persons_confirmation_ends_an_opt_out(
    start: SubscriberStatus, events: list[tuple[lifecycle.Event, SubscriberStatus, bool]]
) -> None:
    """Whatever the form, the directory, `add` and bounces do, in any order, an address that
    said no (or whose mailbox is gone) never becomes active or pending without ``confirm``."""
    status = start
    for event, wanted, request in events:
        status = step(status, event, wanted=wanted, request_open=request).status
        assert status in ("unsubscribed", "bounced")


def test_every_event_has_a_rule_for_every_status() -> None:
    for current in STATUSES:
        for event in lifecycle.EVENTS:
            for wanted in STATUSES:
                assert step(current, event, wanted=wanted, request_open=True).status in STATUSES


@pytest.mark.parametrize(
    ("status", "requested", "expected"),
    [
        ("active", None, "confirmed"),
        ("active", NOW - 30 * WEEK, "confirmed"),
        ("pending", NOW - timedelta(hours=1), "open"),
        ("pending", NOW - WEEK, "open"),  # the last moment counts
        ("pending", NOW - WEEK - timedelta(seconds=1), "expired"),
        ("pending", NOW + timedelta(minutes=1), "open"),  # another process's clock ran ahead
        ("unsubscribed", NOW - timedelta(days=6), "open"),
        ("unsubscribed", NOW - timedelta(days=60), "expired"),
        ("pending", None, None),  # the directory's pending row: no mail, no link
        ("unsubscribed", None, None),
        ("bounced", NOW - timedelta(hours=1), None),
    ],
)
def test_confirmation_state(
    status: SubscriberStatus, requested: datetime | None, expected: str | None
) -> None:
    assert confirmation_state(status, requested, now=NOW, expiry=WEEK) == expected


def test_request_open() -> None:
    assert request_open(NOW - WEEK, now=NOW, expiry=WEEK)
    assert not request_open(NOW - WEEK - timedelta(microseconds=1), now=NOW, expiry=WEEK)
    assert not request_open(None, now=NOW, expiry=WEEK)


@pytest.mark.parametrize(
    ("status", "ever_confirmed", "expected"),
    [
        ("pending", False, "delete"),  # only ever a request
        ("pending", True, "close"),  # the directory put it back to pending: its row stays
        ("unsubscribed", True, "close"),  # the opt-out is remembered
        ("unsubscribed", False, "close"),
        ("active", True, "close"),
    ],
)
def test_stale_request(status: SubscriberStatus, ever_confirmed: bool, expected: str) -> None:
    assert stale_request(status, ever_confirmed=ever_confirmed) == expected


# --- the mailbox an address reaches -------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("nguyenvanan@gmail.com", "nguyenvanan@gmail.com"),
        ("Nguyen.Van.An@Gmail.com", "nguyenvanan@gmail.com"),
        ("n.g.u.y.e.n.vanan@gmail.com", "nguyenvanan@gmail.com"),
        ("nguyenvanan+tin@gmail.com", "nguyenvanan@gmail.com"),
        ("Nguyen.VanAn+ban-tin@GoogleMail.com", "nguyenvanan@gmail.com"),
        ("nguyenvanan@googlemail.com.", "nguyenvanan@gmail.com"),  # a final dot
        ("  nguyenvanan@gmail.com \n", "nguyenvanan@gmail.com"),
        # Other providers: dots count, tags do not.
        ("nguyen.van.an@example.org", "nguyen.van.an@example.org"),
        ("nguyenvanan@example.org", "nguyenvanan@example.org"),
        ("VanPhong+tin@Example.ORG", "vanphong@example.org"),
        ("a+b+c@example.org", "a@example.org"),
        ("+tin@example.org", "+tin@example.org"),  # nothing before the "+": a name, not a tag
        # Internationalised domains: Unicode, Punycode and upper case are one domain.
        ("vanphong@bücher.example", "vanphong@xn--bcher-kva.example"),
        ("vanphong@BÜCHER.example", "vanphong@xn--bcher-kva.example"),
        ("vanphong@xn--bcher-kva.example", "vanphong@xn--bcher-kva.example"),
        ("vanphong@ví-dụ.việt-nam", "vanphong@xn--v-d-rma6749a.xn--vit-nam-zv4c"),
        (
            "vanphong@vi\u0301-du\u0323.vie\u0323\u0302t-nam",
            "vanphong@xn--v-d-rma6749a.xn--vit-nam-zv4c",
        ),  # NFD
        # Not a domain IDNA knows: compared as written.
        ("vanphong@co_gach.example", "vanphong@co_gach.example"),
        ("khong-co-a-cong", "khong-co-a-cong"),
    ],
)
def test_mailbox_key(address: str, key: str) -> None:
    assert mailbox_key(address) == key


def test_different_mailboxes_have_different_keys() -> None:
    keys = {
        mailbox_key(a)
        for a in (
            "nguyenvanan@gmail.com",
            "nguyenvanan@example.org",
            "nguyen.van.an@example.org",
            "nguyenvanan1@gmail.com",
            "nguyenvanan@gmail.co",
        )
    }
    assert len(keys) == 5


# --- the name a confirmation mail repeats ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "greeted"),
    [
        ("Nguyễn Thị Hoà", "Nguyễn Thị Hoà"),
        ("  Nguyễn   Thị\tHoà ", "Nguyễn Thị Hoà"),
        ("Nguye\u0302\u0303n Thi\u0323 Hoa\u0300", "Nguyễn Thị Hoà"),  # NFD, as some keyboards type it
        ("Đồng chí Trần Văn Đức", "Trần Văn Đức"),  # the greeting says "đồng chí" already
        ("đồng chí Lê Minh", "Lê Minh"),
        ("Đ/c Lê Minh", "Lê Minh"),
        ("Tôn Nữ Thị Ngọc Hoa", "Tôn Nữ Thị Ngọc Hoa"),
        ("Jean-Pierre O'Neil Jr.", "Jean-Pierre O'Neil Jr."),
        ("Ê Ban", "Ê Ban"),
        ("", ""),
        ("   ", ""),
        ("Đồng chí", ""),  # a title and no name
        ("Nguyễn Văn 3", ""),  # digits
        ("Xem https://evil.example", ""),  # a link
        ("Trúng thưởng, gọi ngay", ""),  # punctuation of a sentence
        ("Bấm vào đây để nhận quà tặng miễn phí", ""),  # too many words for a name
        ("A" * 51, ""),  # too long
        ("<b>Hoa</b>", ""),
        ("Hoa\u202e", ""),  # a control of text direction
        ("- . '", ""),  # punctuation without letters
    ],
)
def test_greeting_name(name: str, greeted: str) -> None:
    assert greeting_name(name) == greeted
