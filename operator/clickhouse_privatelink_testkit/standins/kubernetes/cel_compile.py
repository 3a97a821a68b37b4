"""CEL rules of a CRD compiled as kube-apiserver compiles them, with a cost estimate (for ``crd_validation``).

Parsing is celpy's (cel-python) grammar; the tree is then walked by a small checker of its own: ``self`` and
``oldSelf`` are typed by the schema as Kubernetes declares it to CEL (``SchemaDeclType``: the root also has
``apiVersion``, ``kind`` and ``metadata.name``/``generateName``), a select of a field the schema does not
declare is cel-go's ``undefined field 'x'``, an unknown identifier or function ``undeclared reference``,
syntax errors carry ANTLR's text (``mismatched input``, ``extraneous input``, ``missing ')'``,
``token recognition error``), all shown as cel-go's ``ERROR: <input>:L:C: ...`` with the source line and a
caret.

Cost estimate: an approximation of cel-go's static estimator (``checker/cost.go``) with Kubernetes' size
estimator and library costs (``apiserver/pkg/cel/library/cost.go``), written over celpy's parse tree:

- every identifier and field select costs 1 (a select on an object or map adds 1 to its operand), literals 0,
  list literals 10, map literals 30; a function call costs 1 plus its arguments, except the ones cel-go prices
  by size: comparisons and ``==`` of strings/bytes/lists (0.1 per element of the smaller operand),
  ``startsWith``/``endsWith`` (0.1 per character of the argument), ``contains`` (product of both traversals),
  ``matches``/``find``/``findAll`` ((size+1)*0.1 times 0.25 per regex character), ``+`` of strings (0.1 per
  character of the result), ``in`` on lists (one per element), ``lowerAscii``/``upperAscii``/``trim``/
  ``substring``/``url``/``quantity``/``ip``/``cidr``/``semver``, ``bytes()``/``string()`` conversions,
  ``strings.quote`` (0.1 per character), ``split``/``replace`` (0.2 per character), ``join`` (0.1 per
  character of the result), ``isSorted``/``sum``/``min``/``max``/``indexOf`` (one per element plus string
  traversal), ``format.<name>().validate`` (0.1 per character times 32); ``&&``/``||`` cost both operands,
  ``?:`` the condition plus the dearer branch; presence tests (``has``) cost their operand only;
- the macros are costed as cel-go expands them: ``all``/``exists`` cost the range size times (3 or 4 + the
  predicate), ``exists_one`` times (predicate + 2), ``map`` times (function + 12), ``filter`` times
  (predicate + 13), plus the range and the accumulator;
- sizes come from the schema as Kubernetes declares them to CEL: ``maxLength`` (times 4, in bytes),
  ``maxItems``, ``maxProperties``, or, where there is no bound, what fits in a 3 MiB request (a string
  3,145,726 characters, a list ``3,145,726 / (min item size + 1)`` items, a map ``/ (min size + 6)``); enum
  strings are as long as the longest value; date-times 32 characters; map keys and identifiers that are
  not ``self`` have no declared size (cel-go's size estimator then answers the root's, usually 0);
- the rule's cost is multiplied by how often it can run: the product of ``maxItems``/``maxProperties`` of the
  lists and maps above it, or, when one of them is unbounded, ``3 MiB / (min serialized size + 1)``; a rule
  over 10,000,000 (``StaticEstimatedCostLimit``) is refused with the real server's
  ``estimated rule cost exceeds budget by factor of ...`` and all rules of a schema together over 100,000,000
  with the ``... total for entire OpenAPIv3 schema`` errors.

Checked against kube-apiserver v1.36: 44 of 46 probed rules (the project's among them) get the server's exact
cost (``tests/standins/test_kubernetes_crd_validation.py`` keeps them). Left out: full overload type checking
(``found no matching overload``, a comprehension over an object are accepted), the cost of the ``lists``
and ``sets`` libraries and of functions the list above does not name (they cost 1 plus their arguments, a
lower bound), and ANTLR's recovery beyond the common syntax errors named above. celpy's grammar lacks the
optional syntax (``a.?b``), which is parsed as the plain form.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import lark
from celpy.celparser import CELParser

Schema = dict[str, Any]

MAX_REQUEST_SIZE_BYTES = 3 * 1024 * 1024
UINT64_MAX = 2**64 - 1


# ----------------------------------------------------------------------------- CEL declarations of a schema


@dataclass
class CelField:
    type: CelType
    required: bool


@dataclass
class CelType:
    """What Kubernetes declares to CEL for a schema (``SchemaDeclType``): kind, fields, element, sizes."""

    kind: str  # object map list string bytes int uint double bool timestamp duration dyn null type
    fields: dict[str, CelField] | None = None
    elem: CelType | None = None
    key: CelType | None = None
    max_elements: int = 0
    min_size: int = 1

    @property
    def name(self) -> str:
        if self.kind == "list":
            return f"list({self.elem.name if self.elem else 'dyn'})"
        if self.kind == "map":
            return f"map(string, {self.elem.name if self.elem else 'dyn'})"
        return self.kind


_STRING_MAX = MAX_REQUEST_SIZE_BYTES - 2
_DYN = CelType("dyn")
_CEL_RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
}  # fmt: skip


def cel_escape(name: str) -> str | None:
    """The CEL field name of a property (``apiservercel.Escape``), or None if it cannot be named."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not re.match(r"^[_a-zA-Z][_a-zA-Z0-9./-]*$", name):
        return None
    escaped = name.replace("__", "__underscores__")
    return escaped.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def _bound(limit: Any, unbounded: int) -> int:
    """A declared maxItems/maxProperties (never negative), or what fits in a request without one."""
    return max(int(limit), 0) if limit is not None else unbounded


def schema_decl_type(s: Schema, *, is_root: bool) -> CelType | None:
    if s.get("x-kubernetes-int-or-string"):
        max_length = s.get("maxLength")
        return CelType(
            "dyn",
            max_elements=max(int(max_length), 0) * 4 if max_length is not None else _STRING_MAX,
            min_size=1,
        )
    kind = s.get("type")
    if kind == "array":
        items = s.get("items")
        if not isinstance(items, dict):
            return None
        elem = schema_decl_type(items, is_root=bool(items.get("x-kubernetes-embedded-resource")))
        if elem is None:
            return None
        count = _bound(s.get("maxItems"), (MAX_REQUEST_SIZE_BYTES - 2) // (elem.min_size + 1))
        return CelType("list", elem=elem, max_elements=count, min_size=2)
    if kind == "object":
        extra = s.get("additionalProperties")
        if isinstance(extra, dict):
            elem = schema_decl_type(extra, is_root=bool(extra.get("x-kubernetes-embedded-resource")))
            if elem is None:
                return None
            count = _bound(s.get("maxProperties"), (MAX_REQUEST_SIZE_BYTES - 2) // (elem.min_size + 6))
            return CelType(
                "map",
                elem=elem,
                key=CelType("string", min_size=2),  # Kubernetes declares map keys without a size
                max_elements=count,
                min_size=2,
            )
        props = dict(s.get("properties") or {})
        if is_root:
            props.setdefault("kind", {"type": "string"})
            props.setdefault("apiVersion", {"type": "string"})
            meta = props.get("metadata") or {}
            meta_props = dict((meta.get("properties") or {}) if isinstance(meta, dict) else {})
            meta_props.setdefault("name", {"type": "string"})
            meta_props.setdefault("generateName", {"type": "string"})
            if not (meta_props.keys() - {"name", "generateName"}):
                props["metadata"] = {"type": "object", "properties": meta_props}
        required = set(s.get("required") or [])
        fields: dict[str, CelField] = {}
        min_size = 2
        for name, prop in props.items():
            if not isinstance(prop, dict):
                continue
            decl = schema_decl_type(prop, is_root=bool(prop.get("x-kubernetes-embedded-resource")))
            if decl is None:
                continue
            escaped = cel_escape(name)
            if escaped is not None:
                fields[escaped] = CelField(decl, name in required)
            if name in required and prop.get("default") is None:
                min_size += len(name) + decl.min_size + 4
        return CelType("object", fields=fields, min_size=min_size)
    if kind == "string":
        fmt = s.get("format")
        if fmt == "byte":
            max_length = s.get("maxLength")
            return CelType(
                "bytes",
                max_elements=max(int(max_length), 0) if max_length is not None else _STRING_MAX,
                min_size=2,
            )
        if fmt == "duration":
            return CelType("duration", max_elements=32, min_size=3)
        if fmt == "date":
            return CelType("timestamp", max_elements=12, min_size=12)
        if fmt == "date-time":
            return CelType("timestamp", max_elements=32, min_size=21)
        max_length = s.get("maxLength")
        if max_length is not None:
            size = max(int(max_length), 0) * 4
        elif s.get("enum"):
            size = max((len(v) for v in s["enum"] if isinstance(v, str)), default=0)
        else:
            size = _STRING_MAX
        return CelType("string", max_elements=size, min_size=2)
    if kind == "boolean":
        return CelType("bool", min_size=4)
    if kind == "number":
        return CelType("double", min_size=1)
    if kind == "integer":
        return CelType("int", min_size=1)
    return None


# ---------------------------------------------------------------------------------------- CEL expressions


@dataclass
class Node:
    """One node of a CEL expression after macro expansion, with cel-go's source position (0-based)."""

    op: str  # lit ident select call list map comp
    line: int = 1
    col: int = 0
    name: str = ""  # identifier, field or function name; comprehension: the macro
    value: Any = None  # literal value
    lit_kind: str = ""  # literal: int uint double string bytes bool null
    target: Node | None = None
    args: list[Node] = field(default_factory=list)
    test_only: bool = False
    iter_var: str = ""
    iter_var2: str = ""  # two-variable comprehensions: index/key, then value


@dataclass
class Compiled:
    error: str = ""
    uses_old_self: bool = False
    cost: int = 0


class _CelError(Exception):
    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


_PARSER: lark.Lark | None = None


def _parser() -> lark.Lark:
    global _PARSER
    if _PARSER is None:
        CELParser()
        _PARSER = CELParser.CEL_PARSER
        assert _PARSER is not None
    return _PARSER


def _display(source: str, errors: list[_CelError]) -> str:
    """cel-go's ``Errors.ToDisplayString``: each error with its source line and a caret under the column."""
    lines = source.split("\n")
    shown = []
    for err in sorted(errors, key=lambda e: (e.line, e.col)):
        text = f"ERROR: <input>:{err.line}:{err.col + 1}: {err.message}"
        if 0 < err.line <= len(lines):
            snippet = lines[err.line - 1].replace("\t", " ")
            text += f"\n | {snippet}\n | " + "." * min(err.col, len(snippet)) + "^"
        shown.append(text)
    return "\n".join(shown)


# The tokens ANTLR's CEL grammar expects where an operand is missing (cel-go's "expecting {...}" sets).
_OPERAND_START = "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"


def _syntax_error(source: str, exc: lark.exceptions.UnexpectedInput) -> _CelError:
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            line, col = _end_position(source)
            if "RPAR" in exc.expected and not (exc.expected - {"RPAR", "COMMA"} - _BINARY_TOKENS):
                return _CelError(line, col, "Syntax error: missing ')' at '<EOF>'")
            return _CelError(line, col, f"Syntax error: mismatched input '<EOF>' expecting {_OPERAND_START}")
        line, col = token.line or 1, (token.column or 1) - 1
        if not exc.expected & _OPERAND_TOKENS:
            return _CelError(line, col, f"Syntax error: extraneous input '{token.value}' expecting <EOF>")
        return _CelError(
            line, col, f"Syntax error: mismatched input '{token.value}' expecting {_OPERAND_START}"
        )
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = source[pos] if pos < len(source) else ""
        return _CelError(exc.line, exc.column - 1, f"Syntax error: token recognition error at: '{char}'")
    return _CelError(1, 0, f"Syntax error: {exc}")


_OPERAND_TOKENS = {
    "IDENT",
    "INT_LIT",
    "UINT_LIT",
    "FLOAT_LIT",
    "STRING_LIT",
    "MLSTRING_LIT",
    "BYTES_LIT",
    "BOOL_LIT",
    "NULL_LIT",
}
_BINARY_TOKENS = {
    "LESSTHAN", "MORETHAN", "__ANON_0", "__ANON_1", "__ANON_2", "__ANON_3", "__ANON_4", "__ANON_5", "IN",
    "PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "QMARK", "DOT", "LSQB", "LBRACE", "LPAR",
}  # fmt: skip


def _end_position(source: str) -> tuple[int, int]:
    lines = source.split("\n")
    return len(lines), len(lines[-1])


def parse_expression(source: str) -> Node:
    """The expression's tree, or :class:`_SyntaxErrors` with the errors ANTLR would report.

    ANTLR recovers after an unknown character (the lexer drops it) and after a token it can delete
    (``extraneous input``), then reports what follows; the same is done here by blanking the offending
    character or token and parsing again.
    """
    errors: list[_CelError] = []
    # celpy's grammar lacks optional syntax (``a.?b``, ``[?x]``, ``{?k: v}``): parse it as the plain form,
    # keeping every column in place.
    text = source.replace(".?", " .").replace("[?", "[ ").replace("{?", "{ ")
    for _ in range(8):
        try:
            tree = _parser().parse(text)
        except lark.exceptions.UnexpectedCharacters as exc:
            errors.append(_syntax_error(source, exc))
            pos = exc.pos_in_stream or 0
            text = text[:pos] + " " + text[pos + 1 :]
            continue
        except lark.exceptions.UnexpectedToken as exc:
            token = exc.token
            if token.type != "$END" and token.start_pos is not None and token.end_pos is not None:
                blanked = text[: token.start_pos] + " " * len(token.value) + text[token.end_pos :]
                if _recovers_after(blanked, token.end_pos or 0):
                    expected = _OPERAND_START if exc.expected & _OPERAND_TOKENS else "<EOF>"
                    line, col = token.line or 1, (token.column or 1) - 1
                    errors.append(
                        _CelError(
                            line, col, f"Syntax error: extraneous input '{token.value}' expecting {expected}"
                        )
                    )
                    text = blanked
                    continue
            errors.append(_syntax_error(source, exc))
            break
        if not errors:
            return _Builder(source).build(tree)
        break
    raise _SyntaxErrors(errors)


def _recovers_after(text: str, position: int) -> bool:
    """Whether parsing ``text`` gets past ``position`` (ANTLR's single-token deletion would succeed)."""
    try:
        _parser().parse(text)
    except lark.exceptions.UnexpectedToken as exc:
        return exc.token.type == "$END" or (exc.token.start_pos or 0) >= position
    except lark.exceptions.UnexpectedInput:
        return True
    return True


class _SyntaxErrors(Exception):
    def __init__(self, errors: list[_CelError]) -> None:
        super().__init__("syntax")
        self.errors = errors


_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_RELATIONS = {
    "relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in",
    "addition_add": "_+_", "addition_sub": "_-_",
    "multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_",
}  # fmt: skip


class _Builder:
    """celpy's lark tree -> :class:`Node` (macros expanded to comprehensions, ``has()`` to a test-only select)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def build(self, tree: Any) -> Node:
        return self.node(tree)

    def node(self, t: Any) -> Node:
        kind = t.data
        children = [c for c in t.children]
        if kind == "expr":
            if len(children) == 1:
                return self.node(children[0])
            cond, yes, no = (self.node(c) for c in children)
            return Node("call", cond.line, cond.col, name="_?_:_", args=[cond, yes, no])
        if kind in ("conditionalor", "conditionaland"):
            if len(children) == 1:
                return self.node(children[0])
            lhs, rhs = self.node(children[0]), self.node(children[1])
            name = "_||_" if kind == "conditionalor" else "_&&_"
            return Node("call", lhs.line, lhs.col, name=name, args=[lhs, rhs])
        if kind in ("relation", "addition", "multiplication"):
            if len(children) == 1:
                return self.node(children[0])
            op_tree, rhs_tree = children
            lhs = self.node(op_tree.children[0])
            rhs = self.node(rhs_tree)
            return Node("call", lhs.line, lhs.col, name=_RELATIONS[op_tree.data], args=[lhs, rhs])
        if kind == "unary":
            if len(children) == 1:
                return self.node(children[0])
            op, operand = children
            inner = self.node(operand)
            line, col = _pos(op)
            return Node("call", line, col, name="!_" if op.data == "unary_not" else "-_", args=[inner])
        if kind in ("member", "primary"):
            return self.node(children[0])
        if kind == "member_dot":
            operand = self.node(children[0])
            ident = children[1]
            return Node("select", ident.line, ident.column - 2, name=str(ident), target=operand)
        if kind == "member_dot_arg":
            operand = self.node(children[0])
            ident = children[1]
            args = self.exprlist(children[2]) if len(children) > 2 else []
            return self.call(str(ident), operand, args, ident.line, ident.end_column - 1)  # at its '('
        if kind == "member_index":
            operand = self.node(children[0])
            index = self.node(children[1])
            return Node("call", operand.line, operand.col, name="_[_]", args=[operand, index])
        if kind == "member_object":
            line, col = _pos(t)
            return Node("call", line, col, name="@struct", args=[])
        if kind == "ident":
            token = children[0]
            return Node("ident", token.line, token.column - 1, name=str(token))
        if kind in ("ident_arg", "dot_ident_arg"):
            token = children[0]
            args = self.exprlist(children[1]) if len(children) > 1 else []
            return self.call(str(token), None, args, token.line, token.end_column - 1)  # at its '('
        if kind == "dot_ident":
            token = children[0]
            return Node("ident", token.line, token.column - 1, name=str(token))
        if kind == "paren_expr":
            return self.node(children[0])
        if kind == "list_lit":
            line, col = _pos(t)
            return Node("list", line, col, args=self.exprlist(children[0]) if children else [])
        if kind == "map_lit":
            line, col = _pos(t)
            entries = [self.node(c) for c in children[0].children] if children else []
            return Node("map", line, col, args=entries)
        if kind == "literal":
            return self.literal(children[0])
        line, col = _pos(t)
        return Node("call", line, col, name="@unknown")

    def exprlist(self, t: Any) -> list[Node]:
        return [self.node(c) for c in t.children]

    def call(self, name: str, target: Node | None, args: list[Node], line: int, col: int) -> Node:
        if name == "has" and target is None and len(args) == 1 and args[0].op == "select":
            return Node("select", line, col, name=args[0].name, target=args[0].target, test_only=True)
        two_vars = name in ("all", "exists", "exists_one") and len(args) == 3 and args[1].op == "ident"
        if target is not None and two_vars and args[0].op == "ident":
            return Node("comp", line, col, name=name, target=target, iter_var=args[0].name, iter_var2=args[1].name,
                        args=args[2:])  # fmt: skip
        if target is not None and name in _MACROS and args and args[0].op == "ident" and len(args) in (2, 3):
            return Node("comp", line, col, name=name, target=target, iter_var=args[0].name, args=args[1:])
        return Node("call", line, col, name=name, target=target, args=args)

    def literal(self, token: Any) -> Node:
        text = str(token)
        line, col = token.line or 1, (token.column or 1) - 1  # celpy's true/false tokens carry no position
        kind = token.type
        if kind == "BOOL_LIT":
            return Node("lit", line, col, value=text == "true", lit_kind="bool")
        if kind == "NULL_LIT":
            return Node("lit", line, col, value=None, lit_kind="null")
        if kind == "UINT_LIT":
            return Node("lit", line, col, value=int(text[:-1], 0), lit_kind="uint")
        if kind == "INT_LIT":
            return Node("lit", line, col, value=int(text, 0), lit_kind="int")
        if kind == "FLOAT_LIT":
            return Node("lit", line, col, value=float(text), lit_kind="double")
        if kind == "BYTES_LIT":
            return Node("lit", line, col, value=_unquote(text[1:]), lit_kind="bytes")
        return Node("lit", line, col, value=_unquote(text), lit_kind="string")


def _pos(t: Any) -> tuple[int, int]:
    meta = getattr(t, "meta", None)
    if meta is not None and not getattr(meta, "empty", True):
        return meta.line, meta.column - 1
    return 1, 0


def _unquote(text: str) -> str:
    raw = text[:1] in "rR"
    body = text[1:] if raw else text
    quote = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[quote:-quote]
    if raw:
        return inner
    try:
        return str(json.loads('"' + inner.replace('"', '\\"').replace("\\'", "'") + '"'))
    except ValueError:
        return inner


# ---------------------------------------------------------------------------- type check and cost estimate


_BOOL = CelType("bool", min_size=4)
_INT = CelType("int")
_UINT = CelType("uint")
_DOUBLE = CelType("double")
_STRING = CelType("string", max_elements=_STRING_MAX, min_size=2)
_BYTES = CelType("bytes", max_elements=_STRING_MAX, min_size=2)
_BOOL_FUNCTIONS = {
    "_<_", "_<=_", "_>_", "_>=_", "_==_", "_!=_", "@in", "!_", "_&&_", "_||_", "startsWith", "endsWith",
    "contains", "matches", "isSorted", "isURL", "isIP", "isCIDR", "isQuantity", "isSemver", "isInteger",
    "isGreaterThan", "isLessThan", "containsIP", "containsCIDR", "isLoopback", "isUnspecified",
    "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast", "isCanonical", "bool", "hasValue",
}  # fmt: skip
_STRING_FUNCTIONS = {
    "string", "lowerAscii", "upperAscii", "trim", "substring", "replace", "join", "format", "charAt",
    "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath", "quote", "find", "reverse",
}  # fmt: skip
_INT_FUNCTIONS = {
    "size", "int", "indexOf", "lastIndexOf", "getFullYear", "getMonth", "getDayOfMonth", "getDate",
    "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds", "sign",
    "compareTo", "asInteger", "major", "minor", "patch", "prefixLength", "family",
}  # fmt: skip
_KNOWN_FUNCTIONS = _BOOL_FUNCTIONS | _STRING_FUNCTIONS | _INT_FUNCTIONS | {
    "_?_:_", "_+_", "_-_", "_*_", "_/_", "_%_", "-_", "_[_]", "@struct", "@unknown", "dyn", "type", "double",
    "uint", "bytes", "duration", "timestamp", "split", "findAll", "sum", "min", "max", "url", "ip", "cidr",
    "quantity", "semver", "masked", "getQuery", "add", "sub", "asApproximateFloat", "lists", "optional",
    "of", "none", "orValue", "value", "or", "ofNonZeroValue", "sets", "equivalent", "intersects",
    "strings", "base64", "encode", "decode", "math", "greatest", "least", "ceil", "floor", "round", "abs",
    "isNaN", "isInf", "isFinite", "bitAnd", "bitOr", "bitXor", "bitNot", "bitShiftLeft", "bitShiftRight",
    "trunc", "range", "slice", "flatten", "distinct", "sort", "sortBy", "first", "last", "format.named",
    "validate", "errors", "fieldSelector", "labelSelector", "jsonpatch", "escapeKey", "with",
}  # fmt: skip
# Functions that parse their string argument: 0.1 per character (Kubernetes' library cost).
_PARSE_FUNCTIONS = {"url", "quantity", "isQuantity", "semver", "isSemver", "cidr", "isIP", "isCIDR", "ip"}
_NAMESPACES = {"format", "strings", "lists", "sets", "optional", "jsonpatch"}
# Identifiers Kubernetes' CEL environment declares: type names and the namespaces of its libraries (``math``
# and ``base64`` are not enabled for CRD rules).
_GLOBALS = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn",
            "duration", "timestamp", "google", "strings", "lists", "sets", "optional", "format", "jsonpatch"}  # fmt: skip


@dataclass
class _Info:
    """What the checker knows of one node: its type, its size estimate and its path from ``self``."""

    type: CelType
    cost: tuple[int, int]
    size: tuple[int, int] | None = None
    path: tuple[str, ...] | None = None


# Per macro, as cel-go expands it: what each iteration adds to the body (loop condition and step), the
# accumulator's initial value, and the result expression.
_MACRO_COSTS: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "all": ((3, 3), (0, 0), (1, 1)),
    "exists": ((4, 4), (0, 0), (1, 1)),
    "exists_one": ((2, 2), (0, 0), (2, 2)),
    "map": ((12, 12), (10, 10), (1, 1)),
    "filter": ((1, 13), (10, 10), (1, 1)),
}


class _Checker:
    """A small CEL checker: resolves ``self``/``oldSelf`` field selects against the schema's declaration,
    infers simple result types, and estimates the cost as cel-go does (see the module docstring)."""

    def __init__(self, decl: CelType, *, optional_old_self: bool) -> None:
        self.decl = decl
        self.optional_old_self = optional_old_self
        self.errors: list[_CelError] = []
        self.uses_old_self = False
        self.scopes: list[dict[str, _Info]] = []

    def check(self, node: Node) -> _Info:
        method = getattr(self, f"_{node.op}")
        info: _Info = method(node)
        return info

    def _lit(self, node: Node) -> _Info:
        kind = node.lit_kind
        size: tuple[int, int] | None = (1, 1)
        if kind in ("string", "bytes"):
            length = len(node.value) if node.value is not None else 0
            size = (length, length)
        types = {
            "bool": _BOOL,
            "int": _INT,
            "uint": _UINT,
            "double": _DOUBLE,
            "string": _STRING,
            "bytes": _BYTES,
            "null": CelType("null"),
        }
        return _Info(types[kind], (0, 0), size)

    def _ident(self, node: Node) -> _Info:
        for scope in reversed(self.scopes):
            if node.name in scope:
                local = scope[node.name]
                return _Info(local.type, (1, 1), local.size, local.path)
        if node.name == "self":
            return _Info(self.decl, (1, 1), None, ("self",))
        if node.name == "oldSelf":
            self.uses_old_self = True
            return _Info(self.decl if not self.optional_old_self else _DYN, (1, 1), None, ("self",))
        if node.name not in _GLOBALS:
            self.errors.append(
                _CelError(node.line, node.col, f"undeclared reference to '{node.name}' (in container '')")
            )
        # cel-go's size estimator resolves any identifier's path from the root (a quirk the cost follows).
        return _Info(_DYN, (1, 1), None, (node.name,))

    def _select(self, node: Node) -> _Info:
        assert node.target is not None
        operand = self.check(node.target)
        t = operand.type
        cost = operand.cost
        result = _DYN
        if t.kind in ("object", "map", "dyn"):
            cost = _add(cost, (1, 1))
        if t.kind == "object" and t.fields is not None:
            declared = t.fields.get(node.name)
            if declared is None:
                self.errors.append(_CelError(node.line, node.col, f"undefined field '{node.name}'"))
            else:
                result = declared.type
        elif t.kind == "map" and t.elem is not None:
            result = t.elem
        if node.test_only:  # Kubernetes charges nothing for the presence test itself
            return _Info(_BOOL, operand.cost, (1, 1))
        path = (*operand.path, node.name) if operand.path is not None else None
        return _Info(result, cost, None, path)

    def _list(self, node: Node) -> _Info:
        infos = [self.check(a) for a in node.args]
        cost = (10, 10)
        for info in infos:
            cost = _add(cost, info.cost)
        elem = infos[0].type if infos and all(i.type.kind == infos[0].type.kind for i in infos) else _DYN
        n = len(infos)
        return _Info(CelType("list", elem=elem, max_elements=n, min_size=2), cost, (n, n))

    def _map(self, node: Node) -> _Info:
        cost = (30, 30)
        for entry in node.args:
            cost = _add(cost, self.check(entry).cost)
        n = len(node.args) // 2
        return _Info(CelType("map", elem=_DYN, key=_DYN, max_elements=n), cost, (n, n))

    def _comp(self, node: Node) -> _Info:
        assert node.target is not None
        rng = self.check(node.target)
        rng_size = self._size(rng)
        elem = (
            rng.type.elem if rng.type.kind == "list" else (rng.type.key if rng.type.kind == "map" else None)
        )
        elem = elem or _DYN
        step = "@items" if rng.type.kind == "list" else "@keys"
        elem_path = (*rng.path, step) if rng.path is not None else None
        scope = {node.iter_var: _Info(elem, (1, 1), _decl_size(elem), elem_path)}
        if node.iter_var2:  # (index, item) of a list, (key, value) of a map
            value = rng.type.elem or _DYN
            value_path = (*rng.path, "@items" if rng.type.kind == "list" else "@values") if rng.path else None
            index = _Info(_INT, (1, 1), (1, 1)) if rng.type.kind == "list" else scope[node.iter_var]
            scope = {
                node.iter_var: index,
                node.iter_var2: _Info(value, (1, 1), _decl_size(value), value_path),
            }
        self.scopes.append(scope)
        try:
            bodies = [self.check(a) for a in node.args]
        finally:
            self.scopes.pop()
        body = (0, 0)
        for b in bodies:
            body = _add(body, b.cost)
        overhead, accu_init, result_cost = _MACRO_COSTS[node.name]
        per_iteration = _add(body, overhead)
        cost = _add(_add(_add(rng.cost, accu_init), result_cost), _mul_pair(rng_size, per_iteration))
        if node.name in ("map", "filter"):
            out_elem = bodies[-1].type if node.name == "map" else elem
            return _Info(CelType("list", elem=out_elem, max_elements=rng_size[1]), cost, rng_size)
        return _Info(_BOOL, cost, (1, 1))

    def _size(self, info: _Info) -> tuple[int, int]:
        if info.size is not None:
            return info.size
        if info.path is not None:
            decl = self._decl_at(info.path)
            if decl is not None:
                return (0, decl.max_elements)
        if info.type.kind in ("bool", "int", "uint", "double", "timestamp", "duration"):
            return (1, 1)
        size = _decl_size(info.type)
        return size if size is not None else (0, UINT64_MAX)

    def _decl_at(self, path: tuple[str, ...]) -> CelType | None:
        current: CelType | None = self.decl
        for step in path[1:]:
            if current is None:
                return None
            if step in ("@items", "@values"):
                current = current.elem
            elif step == "@keys":
                current = current.key
            else:
                declared = (current.fields or {}).get(step)
                current = declared.type if declared is not None else None
        return current

    def _call(self, node: Node) -> _Info:
        namespace = node.target.name if node.target is not None and node.target.op == "ident" else None
        if namespace in _NAMESPACES and not any(namespace in scope for scope in self.scopes):
            target = (
                None  # strings.quote(s), format.dns1123Label()...: a qualified function, not a member call
            )
        else:
            namespace = None
            target = self.check(node.target) if node.target is not None else None
        args = [self.check(a) for a in node.args]
        arg_cost = (0, 0)
        for a in args:
            arg_cost = _add(arg_cost, a.cost)
        if target is not None:
            arg_cost = _add(arg_cost, target.cost)
        name = node.name
        result = self._result_type(name, target, args)
        size: tuple[int, int] | None = None
        call_cost: tuple[int, int] = (1, 1)
        if name in ("_&&_", "_||_"):
            lhs, rhs = args[0].cost, args[1].cost
            return _Info(_BOOL, (lhs[0], _sat(lhs[1] + rhs[1])), (1, 1))
        if name == "_?_:_":
            cond, yes, no = args
            branch = (min(yes.cost[0], no.cost[0]), max(yes.cost[1], no.cost[1]))
            return _Info(result, _add(cond.cost, branch), _union(self._size(yes), self._size(no)))
        if name in ("_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_"):
            if name in ("_==_", "_!=_") or args[0].type.kind in ("string", "bytes"):
                smallest = min(self._size(args[0])[1], self._size(args[1])[1])
                call_cost = (1 if smallest > 0 else 0, _factor(smallest, 0.1))
                call_cost = (_factor(call_cost[0], 0.1), call_cost[1])
        elif name in ("startsWith", "endsWith") and len(args) == 1:
            call_cost = _factor_pair(self._size(args[0]), 0.1)
        elif name == "@in" and len(args) == 2 and args[1].type.kind == "list":
            call_cost = self._size(args[1])
        elif name == "matches" and target is not None and len(args) == 1:
            text = _factor_pair(_add(self._size(target), (1, 1)), 0.1)
            regex = _factor_pair(self._size(args[0]), 0.25)
            call_cost = _mul_pair(text, regex)
        elif name == "contains" and target is not None and len(args) == 1:
            call_cost = _mul_pair(
                _factor_pair(self._size(target), 0.1), _factor_pair(self._size(args[0]), 0.1)
            )
        elif name == "_+_" and result.kind in ("string", "bytes"):
            size = _add(self._size(args[0]), self._size(args[1]))
            call_cost = _factor_pair(size, 0.1)
        elif name == "_+_" and result.kind == "list":
            size = _add(self._size(args[0]), self._size(args[1]))
        elif name in ("lowerAscii", "upperAscii", "substring", "trim") and target is not None:
            size = self._size(target)
            call_cost = _factor_pair(size, 0.1)
        elif name in _PARSE_FUNCTIONS and args:
            call_cost = _factor_pair(self._size(args[0]), 0.1)
            size = self._size(args[0]) if name == "url" else None
        elif name == "validate" and args:  # format.<name>().validate(s): a regex of up to 128 characters
            call_cost = _factor_pair(_factor_pair(self._size(args[0]), 0.1), 128 * 0.25)
        elif name == "quote" and args:  # strings.quote(s)
            call_cost = _factor_pair(self._size(args[0]), 0.1)
            arg_size = self._size(args[0])
            size = (_sat(arg_size[0] + 2), _sat(arg_size[1] * 2 + 2))
        elif name in ("bytes", "string") and len(args) == 1 and args[0].type.kind in ("string", "bytes"):
            arg_size = self._size(args[0])
            call_cost = _factor_pair(arg_size, 0.1)
            size = (
                (arg_size[0], _sat(arg_size[1] * 4)) if name == "bytes" else (arg_size[0] // 4, arg_size[1])
            )
        elif name in ("replace", "split") and target is not None:
            call_cost = _factor_pair(self._size(target), 0.2)
            size = (0, self._size(target)[1])
        elif name in ("find", "findAll") and target is not None and args:
            text = _factor_pair(_add(self._size(target), (1, 1)), 0.1)
            call_cost = _mul_pair(text, _factor_pair(self._size(args[0]), 0.25))
            size = (0, self._size(target)[1])
        elif name in ("isSorted", "sum", "min", "max", "indexOf", "lastIndexOf") and target is not None:
            if target.type.kind == "list":
                elem = target.type.elem or _DYN
                per = (1, 1)
                if elem.kind in ("string", "bytes"):
                    elem_size = self._size(
                        _Info(elem, (0, 0), None, (*target.path, "@items") if target.path else None)
                    )
                    per = _add(per, _factor_pair(elem_size, 0.1))
                call_cost = _mul_pair(self._size(target), per)
            else:
                call_cost = _factor_pair(self._size(target), 0.1)
        elif name == "join" and target is not None:
            lst = self._size(target)
            elem = target.type.elem or _DYN
            elem_size = self._size(
                _Info(elem, (0, 0), None, (*target.path, "@items") if target.path else None)
            )
            size = _mul_pair(lst, elem_size)
            if args:  # one separator between each two elements
                size = _add(size, _mul_pair(self._size(args[0]), (max(lst[0] - 1, 0), max(lst[1] - 1, 0))))
            call_cost = _factor_pair(size, 0.1)
            return _Info(result, _add(call_cost, arg_cost), size)
        elif name == "_[_]" and len(args) == 2:
            base = args[0]
            step = "@items" if base.type.kind == "list" else "@values"
            path = (*base.path, step) if base.path is not None else None
            return _Info(result, _add(call_cost, arg_cost), None, path)
        elif name == "dyn" and args:
            return _Info(args[0].type, _add((1, 1), args[0].cost), args[0].size, args[0].path)
        if namespace is not None:
            pass  # a library function (format.dns1123Label(), lists.range()...): not checked further
        elif name not in _KNOWN_FUNCTIONS or (
            node.target is not None and node.target.op == "ident" and self._undeclared(node.target)
        ):
            self.errors.append(
                _CelError(node.line, node.col, f"undeclared reference to '{name}' (in container '')")
            )
        return _Info(result, _add(call_cost, arg_cost), size)

    def _undeclared(self, ident: Node | None) -> bool:
        """Whether an identifier is neither a local, ``self``/``oldSelf`` nor a declared global."""
        if ident is None or any(ident.name in scope for scope in self.scopes):
            return False
        return ident.name not in ("self", "oldSelf") and ident.name not in _GLOBALS

    def _result_type(self, name: str, target: _Info | None, args: list[_Info]) -> CelType:
        if name in _BOOL_FUNCTIONS:
            return _BOOL
        if name in _STRING_FUNCTIONS:
            return _STRING
        if name in _INT_FUNCTIONS:
            return _INT
        if name == "double":
            return _DOUBLE
        if name in ("split", "findAll"):
            return CelType("list", elem=_STRING, max_elements=_STRING_MAX)
        if name == "_?_:_":
            return args[1].type if args[1].type.kind == args[2].type.kind else _DYN
        if name in ("_+_", "_-_", "_*_", "_/_", "_%_", "-_"):
            kinds = {a.type.kind for a in args}
            if len(kinds) == 1:
                return args[0].type
            return _DYN
        if name == "_[_]" and len(args) == 2:
            base = args[0].type
            if base.kind in ("list", "map") and base.elem is not None:
                return base.elem
        return _DYN


def _decl_size(t: CelType) -> tuple[int, int] | None:
    if t.kind in ("bool", "int", "uint", "double", "timestamp", "duration"):
        return (1, 1)
    if t.kind in ("string", "bytes", "list", "map") and t.max_elements:
        return (0, t.max_elements)
    return None


def _sat(x: int) -> int:
    return min(x, UINT64_MAX)


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (_sat(a[0] + b[0]), _sat(a[1] + b[1]))


def _mul_pair(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (_sat(a[0] * b[0]), _sat(a[1] * b[1]))


def _union(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return (min(a[0], b[0]), max(a[1], b[1]))


def _factor(x: int, f: float) -> int:
    return _sat(math.ceil(x * f)) if x < UINT64_MAX else UINT64_MAX


def _factor_pair(a: tuple[int, int], f: float) -> tuple[int, int]:
    return (_factor(a[0], f), _factor(a[1], f))


def compile_expression(
    source: str, decl: CelType, *, message: bool = False, optional_old_self: bool = False
) -> Compiled:
    """Compile a rule (or, with ``message``, a messageExpression) against the schema's CEL declaration."""
    prefix = "messageExpression compilation failed: " if message else "compilation failed: "
    try:
        tree = parse_expression(source)
    except _SyntaxErrors as exc:
        return Compiled(error=prefix + _display(source, exc.errors))
    checker = _Checker(decl, optional_old_self=optional_old_self)
    info = checker.check(tree)
    if checker.errors:
        return Compiled(error=prefix + _display(source, checker.errors), uses_old_self=checker.uses_old_self)
    want = "string" if message else "bool"
    if info.type.kind not in (want, "dyn"):
        detail = (
            "messageExpression must evaluate to a string"
            if message
            else "cel expression must evaluate to a bool"
        )
        return Compiled(error=detail, uses_old_self=checker.uses_old_self)
    return Compiled(uses_old_self=checker.uses_old_self, cost=info.cost[1])
