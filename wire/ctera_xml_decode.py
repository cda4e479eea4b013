"""Decoding the CTERA XML value encoding fast, with the meaning and the strictness unchanged.

Listing a folder used to spend most of its CPU here (~100 µs per listed entry
through ``defusedxml``'s pure-Python ElementTree and a walk over the tree).
A document is now read in two or three steps:

1. **Check.**  expat reads the whole document with no Python callback, at C
   speed: well-formedness, the encoding, and the refusals that keep hostile
   input harmless (a ``DOCTYPE`` is refused outright, so no entity can be
   declared, expanded or fetched; parameter entities are never parsed).  A
   document that fails here fails with expat's message, exactly as before.
   A document not in UTF-8 (UTF-16, an 8-bit encoding) skips to step 3,
   whose parser is configured the same way and checks as it reads.
2. **Fast read.**  A checked document written only in the plain spellings the
   portal and the SDK emit (``<obj class="…">``, ``<att id="…">``, ``<val>…</val>``,
   ``<val />``, ``<list>``, ``<list />``, no comments, CDATA, namespaces or
   carriage returns) is split into tokens by one regular expression, the
   commonest shape ``<att id="n"><val>t</val></att>`` being a single token,
   and assembled in one loop.  Any token outside that vocabulary, and any
   shape that would be an error, abandons the fast read: it never guesses.
3. **Event read.**  Everything else is decoded from expat's events by
   :class:`_EventDecoder`, which *defines* the meaning: it reproduces the
   former decoder's results and its first error, including which error wins
   when there are several.

Why the fast read is exact: in a well-formed document every ``<`` starts
markup, and the token expression consumes every ``<`` either as one of its
exact tokens or as a whole tag that must then parse as a known tag; comments,
CDATA, processing instructions and anything unusual start with a tag that
does not, and send the document to step 3.  The text the tokens skip lies
between elements, where the encoding ignores it.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers import expat

from wire.ctera_xml import MAX_DEPTH, Obj, Value, XmlDecodeError

__all__ = ["decode_document"]


def decode_document(data: bytes | str) -> Value:
    """Decode one non-blank document; XmlDecodeError if it is not a value of this encoding."""
    text = _utf8_text(data)
    if text is None:
        return _event_read(data)  # checks as it reads: no need for the check of step 1
    _parse(_new_parser(), data)
    value = _fast_read(text)
    return value if value is not _NOT_PLAIN else _event_read(data)


# ---------------------------------------------------------------------------
# step 1: expat, configured so that hostile constructs are refused


def _new_parser() -> Any:
    """An expat parser that refuses DTDs and entities and never reads anything external.

    Namespace processing is on (``}`` separates the URI) so that ``<x:val>`` is
    not mistaken for ``<val>``, as with ElementTree before.
    """
    parser = expat.ParserCreate(None, "}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    # Unreachable once DOCTYPE is refused (declarations live inside one); kept
    # so that the refusal never rests on a single handler.
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_external
    return parser


def _refuse_doctype(name: str, *_ignored: object) -> None:
    raise XmlDecodeError(f"forbidden XML construct: a document type declaration (<!DOCTYPE {name}>)")


def _refuse_entity(name: str, *_ignored: object) -> None:
    raise XmlDecodeError(f"forbidden XML construct: an entity declaration ({name!r})")


def _refuse_external(_context: object, _base: object, system_id: str | None, *_ignored: object) -> None:
    raise XmlDecodeError(f"forbidden XML construct: an external entity ({system_id!r})")


def _parse(parser: Any, data: bytes | str) -> None:
    """Feed the whole document; expat's complaints become XmlDecodeError ("malformed XML: …")."""
    try:
        parser.Parse(data, False)
        parser.Parse(b"", True)
    # UnicodeError: a str holding lone surrogates; OverflowError: a body beyond expat's size.
    except (expat.ExpatError, UnicodeError, OverflowError) as exc:
        raise XmlDecodeError(f"malformed XML: {exc}") from None


def _utf8_text(data: bytes | str) -> str | None:
    """The checked document as text, or None when only the event read can be sure of its encoding."""
    if isinstance(data, str):
        return data  # expat reads a str as UTF-8 whatever its declaration says
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # UTF-16, or an 8-bit encoding declared: expat decoded it, not us


# ---------------------------------------------------------------------------
# step 2: the fast read of plainly written documents

_TOKEN = re.compile(
    # 1 name, 2 text: the commonest shape, with a name expat reports verbatim
    # (no reference, no tab or newline, which it would turn into a space)
    r'<att id="([^"&\t\n]++)"><val>([^<]*+)</val></att>'
    r"|<val>([^<]*+)</val>"  # 3 text of a <val> in a list or at the top
    r"|(<[^>]*+>)"  # 4 any other tag, or the start of a comment, CDATA …
)  # (possessive repeats: what they stop at is never part of what they take, so no backtracking)
_TAG = re.compile(
    r"<(obj|list|att|val)((?:\s+[^\s=/>]+\s*=\s*\"[^\"]*\")*)\s*(/?)>"  # 1 name, 2 attributes, 3 empty
    r"|</(obj|list|att)\s*>"  # 4 end tag (</val> is only ever part of a token)
)
_ATTRIBUTE = re.compile(r'\s+([^\s=/>]+)\s*=\s*"([^"]*)"')
_DECLARATION = re.compile(r"<\?xml\s+version=\"1\.[0-9]+\"(?:\s+encoding=\"[Uu][Tt][Ff]-8\")?"
                          r"(?:\s+standalone=\"(?:yes|no)\")?\s*\?>")
_REFERENCE = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")
_PREDEFINED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}

# What a tag means to the fast read: (action, argument).
_OPEN_OBJ, _EMPTY_OBJ, _OPEN_LIST, _EMPTY_LIST, _OPEN_ATT, _NULL_ATT, _EMPTY_VAL = range(7)
_CLOSE_OBJ, _CLOSE_LIST, _CLOSE_ATT, _NOT_FAST = range(7, 11)
_CLOSES = {"obj": _CLOSE_OBJ, "list": _CLOSE_LIST, "att": _CLOSE_ATT}
#: Tags already understood, shared by all calls; bounded, as tags come from the network.
_TAG_MEMO: dict[str, tuple[int, str | None]] = {}
_TAG_MEMO_LIMIT = 2048

# Where the fast read is (the kind of the innermost open element).
_AT_TOP, _IN_LIST, _IN_OBJ, _IN_ATT, _IN_FULL_ATT = range(5)

_NOT_PLAIN: Any = object()  # the fast read's "not for me": the event read decides


def _fast_read(text: str) -> Value:
    """The value of a checked, plainly written document, or ``_NOT_PLAIN``."""
    start = 0
    if text.startswith("<?xml"):
        declaration = _DECLARATION.match(text)
        if declaration is None:
            return _NOT_PLAIN
        start = declaration.end()
    if "\r" in text:
        return _NOT_PLAIN  # expat normalises line ends; rare enough to leave to it
    with_references = "&" in text
    memo = _TAG_MEMO
    top: list[Value] = []
    stack: list[tuple[int, Any, str | None]] = []
    kind: int = _AT_TOP
    container: Any = top  # the list, or the fields of the obj, that values go into
    name: str | None = None  # the field an open <att> fills
    level = 0  # open <obj>/<list> elements: the depth of the next value
    max_depth = MAX_DEPTH
    for field, field_text, val_text, tag in _TOKEN.findall(text, start):
        if field:
            if kind != _IN_OBJ or level > max_depth:
                return _NOT_PLAIN
            if with_references and "&" in field_text:
                field_text = _REFERENCE.sub(_resolve, field_text)
            container[field] = field_text
            continue
        if tag:
            action, argument = memo.get(tag) or _understand(tag)
            if action >= _CLOSE_OBJ:
                if action == _NOT_FAST:
                    return _NOT_PLAIN
                if action == _CLOSE_ATT:
                    if kind == _IN_ATT:
                        container[name] = None
                    elif kind != _IN_FULL_ATT:
                        return _NOT_PLAIN
                elif (action == _CLOSE_OBJ and kind == _IN_OBJ) or (action == _CLOSE_LIST and kind == _IN_LIST):
                    level -= 1
                else:
                    return _NOT_PLAIN
                kind, container, name = stack.pop()
                continue
            if action == _OPEN_ATT or action == _NULL_ATT:
                if kind != _IN_OBJ:
                    return _NOT_PLAIN
                if action == _NULL_ATT:
                    container[argument] = None
                else:
                    stack.append((kind, container, name))
                    kind, name = _IN_ATT, argument
                continue
            value: Value
            if action == _OPEN_OBJ or action == _EMPTY_OBJ:
                value = Obj(argument, {})
            elif action == _EMPTY_VAL:
                value = ""
            else:
                value = []
        else:
            action = _EMPTY_VAL  # a scalar: nothing to open
            value = val_text
            if with_references and "&" in val_text:
                value = _REFERENCE.sub(_resolve, val_text)
        # A value: it goes into the open <att>, <list> or the document.
        if level > max_depth:
            return _NOT_PLAIN
        if kind == _IN_ATT:
            kind = _IN_FULL_ATT
            container[name] = value
        elif kind == _IN_LIST or (kind == _AT_TOP and not top):
            container.append(value)
        else:
            return _NOT_PLAIN
        if action == _OPEN_OBJ:
            stack.append((kind, container, name))
            kind, container, name = _IN_OBJ, value.fields, None  # type: ignore[union-attr]
            level += 1
        elif action == _OPEN_LIST:
            stack.append((kind, container, name))
            kind, container, name = _IN_LIST, value, None
            level += 1
    if stack or len(top) != 1:
        return _NOT_PLAIN
    return top[0]


def _understand(tag: str) -> tuple[int, str | None]:
    """What ``tag`` means to the fast read (memoised); ``_NOT_FAST`` for anything unusual."""
    action: tuple[int, str | None] = (_NOT_FAST, None)
    match = _TAG.fullmatch(tag)
    if match is not None:
        element, attribute_text, empty, closing = match.groups()
        if closing:
            action = (_CLOSES[closing], None)
        else:
            attributes = {key: _attribute_value(value) for key, value in _ATTRIBUTE.findall(attribute_text)}
            if not any(":" in key or key.startswith("xmlns") for key in attributes):  # namespaces: event read
                if element == "obj":
                    action = (_EMPTY_OBJ if empty else _OPEN_OBJ, attributes.get("class"))
                elif element == "list":
                    action = (_EMPTY_LIST if empty else _OPEN_LIST, None)
                elif element == "att" and "id" in attributes:
                    action = (_NULL_ATT if empty else _OPEN_ATT, attributes["id"])
                elif element == "val" and empty:
                    action = (_EMPTY_VAL, None)
    if len(_TAG_MEMO) >= _TAG_MEMO_LIMIT:
        _TAG_MEMO.clear()
    _TAG_MEMO[tag] = action
    return action


def _attribute_value(raw: str) -> str:
    """An attribute value as expat reports it: literal tabs and newlines become spaces, then references resolve."""
    value = raw.translate(_WHITESPACE_TO_SPACE)
    return _REFERENCE.sub(_resolve, value) if "&" in value else value


_WHITESPACE_TO_SPACE = {ord("\t"): " ", ord("\n"): " "}


def _resolve(reference: re.Match[str]) -> str:
    """The text of a reference expat has already checked (no DTD, so only the predefined five)."""
    body = reference.group(1)
    if body[0] != "#":
        return _PREDEFINED[body]
    return chr(int(body[2:], 16) if body[1] == "x" else int(body[1:]))


# ---------------------------------------------------------------------------
# step 3: the event read, which defines the meaning

_ROOT, _LIST, _OBJ, _ATT, _FULL_ATT, _VAL = range(6)


def _event_read(data: bytes | str) -> Value:
    """Decode any document from expat's events (step 3; also the whole decoding of step 1 again)."""
    decoder = _EventDecoder()
    parser = _new_parser()
    parser.buffer_text = True
    parser.CharacterDataHandler = decoder.chunks.append
    parser.StartElementHandler = decoder.start
    parser.EndElementHandler = decoder.end
    _parse(parser, data)
    return decoder.result()


class _EventDecoder:
    """Builds the value from expat's element events, as the former tree walk did.

    The former decoder parsed the whole document, then walked the tree depth
    first and raised the first problem met.  Errors are therefore remembered,
    not raised, so that a later malformation still wins, and an ``<att>``
    that turns out to hold a second value wins over a problem found inside
    its first one (the walk counted an ``<att>``'s children before entering
    them).  The text of a ``<val>`` is its character data up to its first
    child element or its end; its children are ignored, whatever they are.
    """

    def __init__(self) -> None:
        self.chunks: list[str] = []  # character data since the last <val> began
        self._top: list[Value] = []
        # One frame per open element: [kind, container or <val> text, field name].
        self._frames: list[list[Any]] = [[_ROOT, self._top, None]]
        self._level = 0  # open <obj>/<list> elements: the depth of the next value
        self._ignored = 0  # open elements inside a <val>
        self._error: str | None = None
        self._watched: list[list[Any]] = []  # after an error: [depth, name, values] of each <att> then open
        self._open = 0  # after an error: open elements

    def result(self) -> Value:
        if self._error is not None:
            raise XmlDecodeError(self._error)
        return self._top[0]

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        if self._error is not None:
            self._start_after_error()
            return
        if self._ignored:
            self._ignored += 1
            return
        frame = self._frames[-1]
        kind = frame[0]
        if kind == _VAL:  # at its first child the <val>'s text ends; what it contains is ignored
            if frame[1] is None:
                frame[1] = "".join(self.chunks)
            self._ignored = 1
            return
        if kind == _OBJ:
            if tag != "att":
                self._fail(f"<obj> may contain only <att>, found <{_shown(tag)}>")
            elif (name := attributes.get("id")) is None:
                self._fail("<att> without an id")
            else:
                self._frames.append([_ATT, frame[1], name])
            return
        if kind == _FULL_ATT:
            self._fail(f"<att id={frame[2]!r}> holds more than one value")
            return
        if kind == _ATT:
            frame[0] = _FULL_ATT
        if self._level > MAX_DEPTH:
            self._fail("XML nests too deeply")
            return
        new: list[Any]
        if tag == "val":
            self.chunks.clear()
            self._frames.append([_VAL, None, None])
            return
        if tag == "list":
            value: Value = []
            new = [_LIST, value, None]
        elif tag == "obj":
            value = Obj(attributes.get("class"), {})
            new = [_OBJ, value.fields, None]
        else:
            self._fail(f"unexpected element <{_shown(tag)}>")
            return
        self._place(frame, value)
        self._level += 1
        self._frames.append(new)

    def end(self, _tag: str) -> None:
        if self._error is not None:
            self._end_after_error()
            return
        if self._ignored:
            self._ignored -= 1
            return
        frame = self._frames.pop()
        kind = frame[0]
        if kind == _VAL:
            text = frame[1] if frame[1] is not None else "".join(self.chunks)
            self._place(self._frames[-1], text)
        elif kind == _ATT:
            frame[1][frame[2]] = None
        elif kind != _FULL_ATT:
            self._level -= 1

    @staticmethod
    def _place(parent: list[Any], value: Value) -> None:
        if parent[0] == _FULL_ATT:
            parent[1][parent[2]] = value
        else:
            parent[1].append(value)

    def _fail(self, message: str) -> None:
        """Remember the first problem; from now on only a second value in an enclosing <att> can outrank it."""
        self._error = message
        self._watched = [[depth, frame[2], 1] for depth, frame in enumerate(self._frames)
                         if frame[0] in (_ATT, _FULL_ATT)]
        self._open = len(self._frames)  # the open elements, the failing one included
        self.chunks.clear()

    def _start_after_error(self) -> None:
        watched = self._watched
        if watched and watched[-1][0] == self._open:  # a child of the innermost <att> still open
            watched[-1][2] += 1
            if watched[-1][2] == 2:
                self._error = f"<att id={watched[-1][1]!r}> holds more than one value"
        self._open += 1

    def _end_after_error(self) -> None:
        if self._watched and self._watched[-1][0] == self._open:
            self._watched.pop()
        self._open -= 1
        self.chunks.clear()


def _shown(tag: str) -> str:
    """A tag as ElementTree spelled it in messages: ``{uri}name`` for a namespaced one."""
    return "{" + tag if "}" in tag else tag
