"""A hardened XML reader for D-Bus policy files.

D-Bus policy files carry a DOCTYPE line, so refusing every DTD would refuse every real file.
What is refused is what makes XML dangerous to read: an internal DTD subset, any entity
declaration (the "billion laughs" expansion), external entities and parameter entities.
This is the policy of defusedxml's defaults, done with the stdlib's expat so that the runtime
needs no extra package; tests/collect/test_xmlsafe.py proves each refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.parsers import expat

XML_LIMIT = 1024 * 1024
MAX_ELEMENTS = 100_000
MAX_DEPTH = 64


class UnsafeXML(Exception):
    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass(slots=True)
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element] = field(default_factory=list)

    def iter(self) -> list[Element]:
        out: list[Element] = []
        stack = [self]
        while stack:
            el = stack.pop()
            out.append(el)
            stack.extend(reversed(el.children))
        return out


def parse_xml(data: bytes) -> Element:
    if len(data) > XML_LIMIT:
        raise UnsafeXML(f"larger than {XML_LIMIT} bytes")
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    root: list[Element] = []
    count = [0]

    def line() -> int:
        return int(parser.CurrentLineNumber)

    def start(tag: str, attrs: dict[str, str]) -> None:
        count[0] += 1
        if count[0] > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise UnsafeXML("too many or too deeply nested elements", line())
        el = Element(tag, dict(attrs), line())
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(tag: str) -> None:
        stack.pop()

    def doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: int) -> None:
        if has_internal_subset:
            raise UnsafeXML("DTD with an internal subset refused", line())

    def entity_decl(*args: object) -> None:
        raise UnsafeXML("entity declaration refused", line())

    def unparsed_entity(*args: object) -> None:
        raise UnsafeXML("unparsed entity refused", line())

    def external_ref(*args: object) -> int:
        raise UnsafeXML("external entity refused", line())

    def skipped(*args: object) -> None:
        raise UnsafeXML("entity reference to an undeclared or external entity refused", line())

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity_decl
    parser.UnparsedEntityDeclHandler = unparsed_entity
    parser.ExternalEntityRefHandler = external_ref
    parser.SkippedEntityHandler = skipped
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise UnsafeXML(f"not well-formed XML ({expat.errors.messages[exc.code]})", exc.lineno) from None
    except RecursionError:
        raise UnsafeXML("nesting too deep") from None
    if not root:
        raise UnsafeXML("no root element")
    return root[0]
