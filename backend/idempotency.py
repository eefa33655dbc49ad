"""`Idempotency-Key` (IETF httpapi draft, FR-021): the header's value.

A client whose create got no answer (a 503, a dropped connection) cannot know whether the task
was stored; resending it with the same key is safe: the create is one statement that stores the
key with the task or finds the first create's key (`crud.create_task_once`). How long keys are
remembered and why they have a table of their own: README "Safe retries" and the `0002`
migration.
"""

MAX_KEY_LENGTH = 255


class InvalidKeyError(ValueError):
    """The header is not a key: the reason is the 422's message."""


def parse_key(value: str) -> str:
    """The key in an `Idempotency-Key` value: an RFC 8941 string (`"…"`, with `\\"` and `\\\\`
    escapes), or the bare text Stripe-style clients send; 1-255 printable ASCII characters."""
    value = value.strip(" ")
    key = _unquote(value) if value.startswith('"') else value
    if not key:
        raise InvalidKeyError("must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"must be at most {MAX_KEY_LENGTH} characters")
    if not all(" " <= char <= "~" for char in key):
        raise InvalidKeyError("must be printable ASCII characters")
    return key


def _unquote(value: str) -> str:
    """RFC 8941's sf-string, section 4.2.5; printable ASCII is checked by the caller."""
    key: list[str] = []
    chars = iter(value[1:])
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in ('"', "\\"):
                raise InvalidKeyError('in a quoted key a backslash escapes only \\" and \\\\')
            key.append(escaped)
        elif char == '"':
            if next(chars, None) is not None:
                raise InvalidKeyError("nothing may come after a quoted key's closing quote")
            return "".join(key)
        else:
            key.append(char)
    raise InvalidKeyError("a quoted key needs its closing quote")
