"""backend/idempotency.py: the header's value (RFC 8941 string, or bare)."""

import pytest

from backend.idempotency import InvalidKeyError, parse_key


@pytest.mark.spec("FR-021")
@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('  "padded"  ', "padded"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"with space"', "with space"),
        ("bare with space", "bare with space"),
        ('ends with "', 'ends with "'),
        ("k" * 255, "k" * 255),
        ('"' + "k" * 255 + '"', "k" * 255),
        ('"' + "\\\\" * 255 + '"', "\\" * 255),
    ],
)
def test_a_key_is_read_quoted_or_bare(value: str, key: str) -> None:
    assert parse_key(value) == key


@pytest.mark.spec("FR-021", "EC-2")
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ('""', "must not be empty"),
        ("k" * 256, "must be at most 255 characters"),
        ('"' + "k" * 256 + '"', "must be at most 255 characters"),
        ("caf\u00e9", "must be printable ASCII characters"),
        ("nul\x00", "must be printable ASCII characters"),
        ('"del\x7f"', "must be printable ASCII characters"),
        ('"unterminated', "a quoted key needs its closing quote"),
        ('"', "a quoted key needs its closing quote"),
        ('"escaped quote at the end\\"', "a quoted key needs its closing quote"),
        ('"bad \\escape"', 'in a quoted key a backslash escapes only \\" and \\\\'),
        ('"trailing backslash\\', 'in a quoted key a backslash escapes only \\" and \\\\'),
        ('"key" more', "nothing may come after a quoted key's closing quote"),
        ('"key";param=1', "nothing may come after a quoted key's closing quote"),
    ],
)
def test_anything_else_is_refused_with_the_reason(value: str, reason: str) -> None:
    with pytest.raises(InvalidKeyError) as refused:
        parse_key(value)
    assert str(refused.value) == reason
