"""A JUEL subset with a real tokenizer and recursive-descent parser (no regex matching of expressions).

Grammar (lowest precedence first)::

    expr    := or ('?' expr ':' expr)?
    or      := and (('||' | 'or') and)*
    and     := eq (('&&' | 'and') eq)*
    eq      := cmp (('==' | '!=' | 'eq' | 'ne') cmp)*
    cmp     := add (('<' | '>' | '<=' | '>=' | 'lt' | 'gt' | 'le' | 'ge') add)*
    add     := mul (('+' | '-') mul)*
    mul     := unary (('*' | '/' | 'div' | '%' | 'mod') unary)*
    unary   := ('!' | 'not' | '-' | 'empty') unary | postfix
    postfix := primary ('.' IDENT ('(' args ')')? | '[' expr ']')*
    primary := NUMBER | STRING | 'true' | 'false' | 'null' | IDENT | '(' expr ')'

A text such as ``order-${kind}`` is a composite: literal parts and ``${...}``/``#{...}`` parts are
joined as a string; a text that is exactly one ``${...}`` evaluates to the value itself.

Identifiers are resolved by the caller (variables visible from the execution, plus ``execution``);
an unknown one raises :class:`UnknownIdentifier`, which the engine turns into Camunda's 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KEYWORDS = {"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "empty", "div", "mod", "true", "false", "null",
            "instanceof"}
_WORD_OPERATORS = {"and": "&&", "or": "||", "not": "!", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=",
                   "ge": ">=", "div": "/", "mod": "%"}
_SYMBOLS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", ".", "[", "]", ",", "?", ":", "+", "-", "*",
            "/", "%")


class JuelError(Exception):
    """Any failure to parse or evaluate an expression."""


class JuelSyntaxError(JuelError):
    pass


class UnknownIdentifier(JuelError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Cannot resolve identifier '{name}'")
        self.name = name


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num", "str", "id", "op", "end"
    value: Any
    pos: int


def tokenize(text: str, start: int) -> tuple[list[Token], int]:
    """Tokens of one ``${...}`` body starting at ``start``; returns them and the index after ``}``."""
    tokens: list[Token] = []
    i = start
    length = len(text)
    while i < length:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "}":
            tokens.append(Token("end", None, i))
            return tokens, i + 1
        elif char.isdigit() or (char == "." and i + 1 < length and text[i + 1].isdigit()):
            j = i
            while j < length and (text[j].isdigit() or text[j] == "."):
                j += 1
            if j < length and text[j] in "eE":
                j += 1
                if j < length and text[j] in "+-":
                    j += 1
                while j < length and text[j].isdigit():
                    j += 1
            literal = text[i:j]
            try:
                number: Any = int(literal) if literal.isdigit() else float(literal)
            except ValueError:
                raise JuelSyntaxError(f"bad number '{literal}' at position {i}") from None
            tokens.append(Token("num", number, i))
            i = j
        elif char in "'\"":
            j = i + 1
            chars: list[str] = []
            while j < length and text[j] != char:
                if text[j] == "\\" and j + 1 < length:
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= length:
                raise JuelSyntaxError(f"unterminated string at position {i}")
            tokens.append(Token("str", "".join(chars), i))
            i = j + 1
        elif char.isalpha() or char in "_$":
            j = i
            while j < length and (text[j].isalnum() or text[j] in "_$"):
                j += 1
            word = text[i:j]
            if word in _WORD_OPERATORS:
                tokens.append(Token("op", _WORD_OPERATORS[word], i))
            elif word in KEYWORDS:
                tokens.append(Token("op", word, i))
            else:
                tokens.append(Token("id", word, i))
            i = j
        else:
            for symbol in _SYMBOLS:
                if text.startswith(symbol, i):
                    tokens.append(Token("op", symbol, i))
                    i += len(symbol)
                    break
            else:
                raise JuelSyntaxError(f"unexpected character '{char}' at position {i}")
    raise JuelSyntaxError("missing '}' at the end of the expression")


# ------------------------------------------------------------------------------------------- parser

Node = tuple  # ("lit", v) | ("id", name) | ("prop", obj, name) | ("index", obj, key) | ("call", obj, name, args)
# | ("unary", op, operand) | ("binary", op, left, right) | ("cond", test, yes, no)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def accept(self, *ops: str) -> str | None:
        token = self.tokens[self.pos]
        if token.kind == "op" and token.value in ops:
            self.pos += 1
            return str(token.value)
        return None

    def expect(self, op: str) -> None:
        if self.accept(op) is None:
            token = self.peek()
            found = "end of expression" if token.kind == "end" else repr(token.value)
            raise JuelSyntaxError(f"expected '{op}' at position {token.pos}, found {found}")

    def parse(self) -> Node:
        node = self.expr()
        token = self.peek()
        if token.kind != "end":
            raise JuelSyntaxError(f"unexpected {token.value!r} at position {token.pos}")
        return node

    def expr(self) -> Node:
        node = self.binary_level(0)
        if self.accept("?"):
            yes = self.expr()
            self.expect(":")
            no = self.expr()
            return ("cond", node, yes, no)
        return node

    _LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"),
                                           ("*", "/", "%"))

    def binary_level(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary_level(level + 1)
        while (op := self.accept(*self._LEVELS[level])) is not None:
            node = ("binary", op, node, self.binary_level(level + 1))
        return node

    def unary(self) -> Node:
        op = self.accept("!", "-", "empty")
        if op is not None:
            return ("unary", op, self.unary())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                token = self.tokens[self.pos]
                if token.kind != "id" and not (token.kind == "op" and str(token.value).isalpha()):
                    raise JuelSyntaxError(f"expected a property name at position {token.pos}")
                self.pos += 1
                if self.accept("("):
                    node = ("call", node, str(token.value), self.arguments())
                else:
                    node = ("prop", node, str(token.value))
            elif self.accept("["):
                key = self.expr()
                self.expect("]")
                node = ("index", node, key)
            else:
                return node

    def arguments(self) -> list[Node]:
        args: list[Node] = []
        if self.accept(")"):
            return args
        while True:
            args.append(self.expr())
            if self.accept(")"):
                return args
            self.expect(",")

    def primary(self) -> Node:
        token = self.tokens[self.pos]
        if token.kind in ("num", "str"):
            self.pos += 1
            return ("lit", token.value)
        if token.kind == "id":
            self.pos += 1
            if self.accept("("):
                raise JuelSyntaxError(f"functions are not supported: '{token.value}(' at position {token.pos}")
            return ("id", token.value)
        if token.kind == "op" and token.value in ("true", "false", "null"):
            self.pos += 1
            return ("lit", {"true": True, "false": False, "null": None}[token.value])
        if self.accept("("):
            node = self.expr()
            self.expect(")")
            return node
        found = "end of expression" if token.kind == "end" else repr(token.value)
        raise JuelSyntaxError(f"unexpected {found} at position {token.pos}")


# --------------------------------------------------------------------------------------- evaluation

Resolver = Callable[[str], Any]  # raises KeyError for an unknown identifier


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_number(value: Any) -> int | float:
    if value is None or value == "":
        return 0
    if _is_number(value):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise JuelError(f"Cannot coerce '{value}' to a number") from None
    raise JuelError(f"Cannot coerce {type(value).__name__} to a number")


def _to_bool(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    raise JuelError(f"Cannot coerce {type(value).__name__} to a boolean")


def _equals(left: Any, right: Any) -> bool:
    if left is right or (left is None and right is None):
        return True
    if left is None or right is None:
        return False
    if _is_number(left) or _is_number(right):
        return _to_number(left) == _to_number(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return _to_bool(left) == _to_bool(right)
    if isinstance(left, str) or isinstance(right, str):
        return str(left) == str(right)
    return bool(left == right)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if _is_number(left) or _is_number(right):
        left, right = _to_number(left), _to_number(right)
    elif isinstance(left, str) or isinstance(right, str):
        left, right = str(left), str(right)
    try:
        if op == "<":
            return bool(left < right)
        if op == ">":
            return bool(left > right)
        if op == "<=":
            return bool(left <= right)
        return bool(left >= right)
    except TypeError:
        raise JuelError(f"Cannot compare {type(left).__name__} and {type(right).__name__}") from None


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if left is None and right is None:
        return 0
    a, b = _to_number(left), _to_number(right)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            raise JuelError("Division by zero")
        return a / b
    if b == 0:
        raise JuelError("Division by zero")
    return a % b


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | dict | tuple):
        return len(value) == 0
    return False


# Methods a value may be asked for, by Python type (Java names, as expressions are written for Java).
_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "contains": lambda s, x: str(x) in s,
    "startsWith": lambda s, x: s.startswith(str(x)),
    "endsWith": lambda s, x: s.endswith(str(x)),
    "length": len,
    "isEmpty": lambda s: len(s) == 0,
    "toUpperCase": str.upper,
    "toLowerCase": str.lower,
    "trim": str.strip,
    "equals": lambda s, x: s == x,
    "equalsIgnoreCase": lambda s, x: isinstance(x, str) and s.lower() == x.lower(),
}
_MAP_METHODS: dict[str, Callable[..., Any]] = {
    "get": lambda m, k: m.get(k),
    "containsKey": lambda m, k: k in m,
    "size": len,
    "isEmpty": lambda m: len(m) == 0,
}
_LIST_METHODS: dict[str, Callable[..., Any]] = {
    "get": lambda values, i: values[int(i)],
    "contains": lambda values, x: x in values,
    "size": len,
    "isEmpty": lambda values: len(values) == 0,
}


class ContextObject:
    """Base for objects exposed to expressions (e.g. ``execution``); only ``juel_methods`` are callable."""

    juel_methods: frozenset[str] = frozenset()


def _call(target: Any, name: str, args: list[Any]) -> Any:
    if isinstance(target, ContextObject) and name in target.juel_methods:
        return getattr(target, name)(*args)
    table = (_STRING_METHODS if isinstance(target, str) else _MAP_METHODS if isinstance(target, dict)
             else _LIST_METHODS if isinstance(target, list) else {})
    method = table.get(name)
    if method is None:
        raise JuelError(f"Method not found: {type(target).__name__}.{name}")
    try:
        return method(target, *args)
    except (TypeError, IndexError, ValueError) as exc:
        raise JuelError(f"Cannot call {name}: {exc}") from None


def _property(target: Any, name: Any) -> Any:
    if isinstance(target, dict):
        return target.get(name)
    if isinstance(target, list):
        try:
            return target[int(name)]
        except (ValueError, IndexError):
            raise JuelError(f"Index {name} is out of bounds") from None
    if target is None:
        raise JuelError(f"Cannot read property '{name}' of null")
    getter = f"get{str(name)[:1].upper()}{str(name)[1:]}"
    if isinstance(target, ContextObject) and getter in target.juel_methods:
        return getattr(target, getter)()
    raise JuelError(f"Property '{name}' not found on type {type(target).__name__}")


def _evaluate(node: Node, resolve: Resolver) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "id":
        try:
            return resolve(node[1])
        except KeyError:
            raise UnknownIdentifier(node[1]) from None
    if kind == "binary":
        op = node[1]
        if op == "&&":
            return _to_bool(_evaluate(node[2], resolve)) and _to_bool(_evaluate(node[3], resolve))
        if op == "||":
            return _to_bool(_evaluate(node[2], resolve)) or _to_bool(_evaluate(node[3], resolve))
        left, right = _evaluate(node[2], resolve), _evaluate(node[3], resolve)
        if op == "==":
            return _equals(left, right)
        if op == "!=":
            return not _equals(left, right)
        if op in ("<", ">", "<=", ">="):
            return _compare(op, left, right)
        return _arithmetic(op, left, right)
    if kind == "unary":
        value = _evaluate(node[2], resolve)
        if node[1] == "!":
            return not _to_bool(value)
        if node[1] == "empty":
            return _is_empty(value)
        return -_to_number(value)
    if kind == "cond":
        return _evaluate(node[2] if _to_bool(_evaluate(node[1], resolve)) else node[3], resolve)
    if kind == "prop":
        return _property(_evaluate(node[1], resolve), node[2])
    if kind == "index":
        return _property(_evaluate(node[1], resolve), _evaluate(node[2], resolve))
    if kind == "call":
        target = _evaluate(node[1], resolve)
        return _call(target, node[2], [_evaluate(arg, resolve) for arg in node[3]])
    raise JuelError(f"bad node {kind}")


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression text: literal strings and parsed ``${...}`` trees."""

    source: str
    parts: tuple[str | Node, ...]  # str = literal text, tuple = parsed tree

    @property
    def is_literal(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def evaluate(self, resolve: Resolver) -> Any:
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return _evaluate(self.parts[0], resolve)
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = _evaluate(part, resolve)
                out.append("" if value is None else _to_text(value))
        return "".join(out)


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compile_expression(text: str) -> Expression:
    """Parse ``text`` once; raises :class:`JuelSyntaxError` for a malformed ``${...}``."""
    parts: list[str | Node] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in "$#" and text.startswith("{", i + 1):
            if literal:
                parts.append("".join(literal))
                literal = []
            tokens, i = tokenize(text, i + 2)
            parts.append(_Parser(tokens).parse())
        elif text[i] == "\\" and text.startswith(("${", "#{"), i + 1):
            literal.append(text[i + 1 : i + 3])
            i += 3
        else:
            literal.append(text[i])
            i += 1
    if literal or not parts:
        parts.append("".join(literal))
    return Expression(text, tuple(parts))
