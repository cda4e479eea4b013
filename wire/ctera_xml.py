"""The CTERA Portal XML value encoding (``<obj>``, ``<att>``, ``<val>``, ``<list>``).

Every ``execute`` request and most API replies carry exactly one value in this
encoding::

    <obj class="FetchResourcesParam"><att id="start"><val>0</val></att>...</obj>

The problem this module solves is fidelity in both directions:

* Decoding never guesses types.  The vendor SDK turns ``<val>123</val>`` into an
  ``int`` and strips whitespace, so a file called ``123`` or `` notes`` comes
  back mangled.  Here every ``<val>`` decodes to its text verbatim; consumers
  convert the fields they know with :func:`as_int`, :func:`as_bool` and friends.
* Encoding emits exactly the shape the SDK was observed to send and accept: no
  XML declaration, no whitespace between elements, raw UTF-8, ``<val />`` for the
  empty string, and an ``<att id=".."/>`` without a child for null.
* The input is untrusted (it arrives from the network on both sides): a
  ``DOCTYPE`` is refused (so no entity is ever declared, expanded or fetched),
  its size is capped by the caller, and its nesting depth is capped here.
  Decoding is on the hot path of every listing; :mod:`wire.ctera_xml_decode`
  does it fast without changing its meaning.

Value model (decoded and encodable):

=============  ==========================================
XML            Python
=============  ==========================================
``<val>t</val>``  ``str`` (decoded); encodes str/int/float/bool
``<att/>``        ``None``
``<list>``        ``list``
``<obj>``         :class:`Obj` (``class_name`` + ordered ``fields``)
=============  ==========================================
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from xml.sax.saxutils import escape as _escape_text

__all__ = [
    "Obj",
    "Value",
    "XmlDecodeError",
    "decode",
    "encode",
    "encode_text",
    "as_int",
    "as_bool",
    "as_str",
    "as_obj",
    "as_list",
    "format_timestamp",
    "parse_timestamp",
]

#: Deeper nesting than this is refused; real payloads nest five or six levels.
MAX_DEPTH = 32

Value: TypeAlias = "None | str | int | float | bool | list[Value] | Obj"


class XmlDecodeError(ValueError):
    """The bytes are not a well-formed value of this encoding."""


@dataclass
class Obj:
    """An ``<obj>``: an optional class name and an ordered mapping of fields."""

    class_name: str | None = None
    fields: dict[str, Value] = field(default_factory=dict)

    def get(self, name: str, default: Value = None) -> Value:
        return self.fields.get(name, default)

    def __getitem__(self, name: str) -> Value:
        return self.fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self.fields


def obj(class_name: str | None = None, /, **fields: Value) -> Obj:
    """Build an :class:`Obj` from keyword arguments, in argument order."""
    return Obj(class_name, dict(fields))


# ---------------------------------------------------------------------------
# encoding


def encode(value: Value) -> bytes:
    """Encode one value as a complete document (UTF-8 bytes)."""
    return encode_text(value).encode("utf-8")


def encode_text(value: Value) -> str:
    """Encode one value as text; lists and objects become their own elements."""
    parts: list[str] = []
    _encode_into(parts, value, depth=0)
    return "".join(parts)


def _encode_into(parts: list[str], value: Value, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value nests too deeply to encode")
    if value is None:
        # Only meaningful inside an <att>; at top level an empty <val/> is the
        # closest thing to "null" the SDK accepts.
        parts.append("<val />")
    elif isinstance(value, Obj):
        if value.class_name:
            parts.append(f'<obj class="{_escape_attr(value.class_name)}">')
        else:
            parts.append("<obj>")
        for name, item in value.fields.items():
            if item is None:
                parts.append(f'<att id="{_escape_attr(name)}" />')
            else:
                parts.append(f'<att id="{_escape_attr(name)}">')
                _encode_into(parts, item, depth + 1)
                parts.append("</att>")
        parts.append("</obj>")
    elif isinstance(value, list):
        if not value:
            parts.append("<list />")
            return
        parts.append("<list>")
        for item in value:
            _encode_into(parts, item, depth + 1)
        parts.append("</list>")
    else:
        text = _scalar_text(value)
        parts.append(f"<val>{_escape_text(text)}</val>" if text else "<val />")


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as a CTERA XML value")


def _escape_attr(text: str) -> str:
    return _escape_text(text, {'"': "&quot;"})


# ---------------------------------------------------------------------------
# decoding


def decode(data: bytes | str) -> Value:
    """Decode one document.  An empty body decodes to ``None`` (the portal's null)."""
    if not data.strip():  # bytes strip ASCII whitespace, str any Unicode whitespace
        return None
    # Imported here: the decoder builds this module's Obj, so it imports this module.
    from wire.ctera_xml_decode import decode_document

    return decode_document(data)


# ---------------------------------------------------------------------------
# schema-directed conversions of decoded values
#
# A listing calls these some twenty times per entry, so each first answers
# the case decoded replies nearly always present (plain text, ``true``,
# ``false``, ASCII digits) and only then the general one.


def as_str(value: Value, *, default: str | None = None) -> str | None:
    """A string field: verbatim text, or ``default`` when null."""
    if type(value) is str:
        return value
    if value is None:
        return default
    if isinstance(value, (Obj, list)):
        raise XmlDecodeError(f"expected a scalar, got {type(value).__name__}")
    return value if isinstance(value, str) else _scalar_text(value)


def as_int(value: Value, *, default: int | None = None) -> int | None:
    """An integer field; null or empty text gives ``default``."""
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    text = as_str(value)
    if text is None or text.strip() == "":
        return default
    try:
        return int(text.strip())
    except ValueError:
        raise XmlDecodeError(f"expected an integer, got {text!r}") from None


def as_bool(value: Value, *, default: bool | None = None) -> bool | None:
    """A boolean field (``true``/``false``, case-insensitive)."""
    if value == "true":
        return True
    if value == "false":
        return False
    text = as_str(value)
    if text is None or text.strip() == "":
        return default
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise XmlDecodeError(f"expected true or false, got {text!r}")


def as_obj(value: Value) -> Obj | None:
    if value is None or isinstance(value, Obj):
        return value
    raise XmlDecodeError(f"expected an object, got {type(value).__name__}")


def as_list(value: Value) -> list[Value]:
    """A list field; null (and the empty string of an ``<val/>``) is the empty list."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    raise XmlDecodeError(f"expected a list, got {type(value).__name__}")


def iter_objs(value: Value) -> Iterator[Obj]:
    """The objects of a list field, refusing anything else inside it."""
    for item in as_list(value):
        found = as_obj(item)
        if found is None:
            raise XmlDecodeError("null inside a list of objects")
        yield found


# ---------------------------------------------------------------------------
# timestamps


def format_timestamp(when: float | _dt.datetime) -> str:
    """The portal's naive timestamp form, ``YYYY-MM-DDTHH:MM:SS``, in UTC."""
    if not isinstance(when, _dt.datetime):
        when = _dt.datetime.fromtimestamp(when, _dt.timezone.utc)
    elif when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch; accepts fractions and offsets, naive means UTC."""
    try:
        parsed = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise XmlDecodeError(f"not a timestamp: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed.timestamp()
