"""The middleware's check for routing headers a handler set itself
(``ocpi.server._has_ocpi_header``) gives the verdict of the plain test it replaced,
``any(name.lower().startswith("ocpi-") for name in names)``, on any header names aiohttp
would write (no CR or LF)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocpi.server import _has_ocpi_header

# Names near the prefix in every case, beside arbitrary text (non-ASCII letters whose
# lower case differs in context, such as a final sigma, included).
_name = st.one_of(
    st.text(st.characters(exclude_characters="\r\n"), max_size=12),
    st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(
            ["OCPI-", "ocpi-", "OcPi-", "OCPI", "OCPI_", "X-OCPI-", " OCPI-", "ΣOCPI-"]
        ),
        st.text(st.characters(exclude_characters="\r\n"), max_size=8),
    ),
)


def _plain(names: list[str]) -> bool:
    return any(name.lower().startswith("ocpi-") for name in names)


@given(st.lists(_name, max_size=8))
def test_the_same_verdict_as_the_plain_test(names: list[str]) -> None:
    assert _has_ocpi_header(names) is _plain(names)


def test_examples() -> None:
    assert _has_ocpi_header(["Content-Type", "OCPI-to-party-id"])
    assert _has_ocpi_header(["ocpi-from-country-code"])
    assert not _has_ocpi_header(["Content-Type", "X-OCPI-to-party-id", "OCPI"])
    assert not _has_ocpi_header([])
