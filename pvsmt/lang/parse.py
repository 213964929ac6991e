"""Reading .spec and .inv files (grammar.lark) into Spec and Invariant objects.

Every error is an InputError located at file:line:column, with a message that
says what was expected.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import InputError, Location
from .spec import Fact, Spec
from ..model.vocab import KNOB, TABLE, Delivery, Guest
from . import expr as E

_TERMINALS = {
    "NAME": "a name", "ID": "a name", "NUMBER": "a number", "STRING": "a quoted string", "INVARIANT": "'invariant'",
    "DIFFERENCE": "'difference'", "COMPARE": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '<<' or '%'", "TABLE": "'idt' or 'tt'",
    "$END": "end of file",
}


# The terminals grammar.lark names; the tree keeps their tokens and leaves out its quoted keywords and punctuation.
NAMED_TERMINALS = frozenset({"ID", "NAME", "NUMBER", "STRING", "TABLE", "INVARIANT", "DIFFERENCE", "COMPARE", "ADD_OP",
                             "MUL_OP"})


class Span:
    """Where a tree's text lies: its own (start_pos, end_pos), and `outer_*` with the brackets that
    enclose it, which belong to the tree around it (`(a or b) and c` starts at its bracket)."""

    __slots__ = ("start_pos", "end_pos", "outer_start", "outer_end")

    def __init__(self, start: int, end: int):
        self.start_pos = self.outer_start = start
        self.end_pos = self.outer_end = end


def _start(node) -> int:
    return node.meta.outer_start if isinstance(node, Tree) else node.start_pos


def _end(node) -> int:
    return node.meta.outer_end if isinstance(node, Tree) else node.end_pos


class TreeShaper:
    """Builds the tree while the parser reduces: the tree and positions Lark's own builder gives with
    propagate_positions, which took a third of the parse (tests/test_language.py compares the two).
    The parser keeps every token (keep_all_tokens), so that a tree's span can start at its keyword;
    this drops the unnamed ones and inlines a `?rule` left with one child, as Lark does."""

    def __init__(self):
        self.inlined: frozenset[str] = frozenset()  # the `?rule`s: set once the grammar is loaded

    def __default__(self, data, children: list, _meta):
        if data.startswith("_"):  # Lark's rule for a repetition: the rule around it takes its children as they are
            return Tree(data, children)
        kept = [c for c in children if not (isinstance(c, Token) and c.type not in NAMED_TERMINALS)]
        if data in self.inlined and len(kept) == 1:
            if isinstance(kept[0], Tree):
                kept[0].meta.outer_start, kept[0].meta.outer_end = _start(children[0]), _end(children[-1])
            return kept[0]
        return Tree(data, kept, Span(_start(children[0]), _end(children[-1])) if children else None)


@lru_cache(maxsize=1)
def parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    shaper = TreeShaper()
    lark = Lark(grammar, start=["start_spec", "start_inv", "start_expr", "start_expect"], parser="lalr",
                keep_all_tokens=True, transformer=shaper, maybe_placeholders=False, cache=True)
    shaper.inlined = frozenset(str(r.origin.name) for r in lark.rules if r.options.expand1)
    return lark


_SPEC_ONLY = {"set", "default", "extends", "delivery", "uncertain", "idt", "tt", "spec"}
_INV_ONLY = {"invariant", "description", "specs", "assume", "prove", "expect", "witness"}


def _expected(names, start: str = "") -> str:
    return ", ".join(_expected_list(names, start))


def _expected_list(names, start: str = "") -> list[str]:
    shown = []
    drop = {"start_inv": _SPEC_ONLY, "start_spec": _INV_ONLY, "start_expect": _SPEC_ONLY | _INV_ONLY}.get(start, set())
    for n in sorted(names):
        if n in _TERMINALS:
            shown.append(_TERMINALS[n])
            continue
        try:
            word = parser().get_terminal(n).pattern.value
        except KeyError:
            shown.append(n)
            continue
        if word not in drop:
            shown.append(repr(word))
    return list(dict.fromkeys(shown))


_OPERATORS = ["'and'", "'or'", "'=>'", "a comparison", "'in'", "'not'", "'+' or '-'", "'*', '<<' or '%'", "'..'", "'.'"]
_CLAUSES = ["'assume'", "'prove'", "'cite'", "'description'", "'specs'", "'expect'", "'witness'", "'when'",
            "'set'", "'default'", "'idt'", "'tt'", "'idt' or 'tt'", "'extends'", "'delivery'", "'uncertain'"]
_CLOSERS = ["')'", "']'", "'}'"]


def _expected_words(names, start: str = "") -> str:
    """What the parser would have accepted, in words: a short list as is; a long one
    grouped (an operator, a closing bracket, the next clause) with a few examples."""
    shown = _expected_list(names, start) if names else []
    if len(shown) <= 6:
        return ", ".join(shown)
    ops = [s for s in shown if s in _OPERATORS]
    closers = [s for s in shown if s in _CLOSERS]
    clauses = [s for s in shown if s in _CLAUSES]
    rest = [s for s in shown if s not in ops + closers + clauses and s != "'('"]
    parts = []
    if ops:
        parts.append("an operator (and, or, ==, =>, ...)" if len(ops) > 2 else " or ".join(ops))
    if closers:
        parts.append("a closing " + " or ".join(closers))
    if clauses:
        words = [c.strip("'") for c in clauses if " or " not in c]
        parts.append("the next clause (" + ", ".join(words[:4]) + (", ..." if len(words) > 4 else "") + ")")
    parts += rest
    return ", ".join(parts[:-1]) + (", or " if len(parts) > 1 else "") + parts[-1] if parts else ", ".join(shown)


def parse_text(text: str, path: str, start: str) -> Tree:
    try:
        return parser().parse(text, start=start)
    except UnexpectedInput as exc:
        where = Location(path, exc.line if exc.line > 0 else 0, exc.column if exc.column > 0 else 0)
        if isinstance(exc, UnexpectedToken):
            if exc.token.type == "$END":
                raise InputError(where, f"unexpected end of file; expected {_expected_words(exc.expected, start)}") from None
            if str(exc.token) == "=":
                raise InputError(where, "unexpected '='; did you mean '=='? (a comparison is written ==, !=, <, <=, "
                                        ">, >=)") from None
            raise InputError(where, f"unexpected '{exc.token}'; expected {_expected_words(exc.expected, start)}") from None
        if isinstance(exc, UnexpectedCharacters):
            raise InputError(where, f"unexpected character {text[exc.pos_in_stream]!r}") from None
        if isinstance(exc, UnexpectedEOF):
            raise InputError(Location(path), f"unexpected end of file; expected {_expected(exc.expected, start)}") from None
        raise InputError(where, str(exc).splitlines()[0]) from None


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, expected a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), f"cannot read: {exc}") from None


_NOT_PLAIN = ("\\", "\0", "\r")  # a string with one of these is left to literal_eval (to read or refuse)


class Builder:
    """Turns parse trees of one file into typed objects."""

    sides = False  # may names say `old.`/`new.` (a system knob of one side of a diff)?

    def __init__(self, path: str, source: str = ""):
        self.path = path
        self.source = source  # the file's text: expressions and facts keep their spelling

    def spelling(self, node) -> str:
        """The source text a tree or token spans (empty without the source)."""
        meta = node if isinstance(node, Token) else getattr(node, "meta", None)
        start, end = getattr(meta, "start_pos", None), getattr(meta, "end_pos", None)
        return self.source[start:end] if self.source and start is not None and end is not None else ""

    def line_text(self, where: Location) -> str:
        lines = self.source.splitlines()
        return lines[where.line - 1].strip() if 0 < where.line <= len(lines) else ""

    def at(self, node) -> Location:
        """Where a token or a tree starts (its first token: trees carry no positions)."""
        while isinstance(node, Tree) and node.children:
            node = node.children[0]
        if isinstance(node, Token):
            return Location(self.path, node.line or 0, node.column or 0)
        return Location(self.path)

    def string(self, token: Token) -> str:
        if not any(c in token for c in _NOT_PLAIN):  # the text between the quotes, as literal_eval gives it
            return token[1:-1]
        try:
            return ast.literal_eval(str(token))
        except (SyntaxError, ValueError) as exc:
            raise InputError(self.at(token), f"bad string {token}: {exc.msg if hasattr(exc, 'msg') else exc}") from None

    # ---- expressions ---------------------------------------------------------
    def expr(self, node, outcomes: bool = True) -> E.Expr:
        return self._expr(node, outcomes).spelled(self.spelling(node))

    def _expr(self, node, outcomes: bool) -> E.Expr:
        where = self.at(node)
        if isinstance(node, Token):
            raise InputError(where, f"unexpected '{node}'")
        kind = node.data
        kids = node.children
        if kind in ("start_expr",):
            return self._expr(kids[0], outcomes)
        if kind == "number":
            return E.number(where, str(kids[0]))
        if kind == "none":
            return E.NoneLit(where)
        if kind == "name":
            return E.name(where, [str(k) for k in kids], outcomes, self.sides)
        if kind == "table_ref":
            return E.table_ref(where, str(kids[0]), self.expr(kids[1], outcomes), str(kids[2]))
        if kind == "table_word":  # `idt` as a word: the hardware event, not the table
            return E.name(where, [str(kids[0])], outcomes)
        if kind == "call":
            return E.call(where, str(kids[0]), self.expr(kids[1], outcomes))
        if kind == "compare":
            return E.compare(where, str(kids[1]), self.expr(kids[0], outcomes), self.expr(kids[2], outcomes))
        if kind == "arith":
            return E.arith(where, str(kids[1]), self.expr(kids[0], outcomes), self.expr(kids[2], outcomes))
        if kind in ("member", "not_member"):
            items = [self.set_item(k, outcomes) for k in kids[1].children]
            return E.member(where, self.expr(kids[0], outcomes), items, negate=kind == "not_member")
        if kind in ("and_expr", "or_expr"):
            return E.logic(where, kind[:-5], [self.expr(k, outcomes) for k in kids])
        if kind == "not_":
            return E.logic(where, "not", [self.expr(kids[0], outcomes)])
        if kind == "implies":
            return E.logic(where, "=>", [self.expr(kids[0], outcomes), self.expr(kids[1], outcomes)])
        raise InputError(where, f"unexpected {kind}")

    def set_item(self, node, outcomes: bool):
        if isinstance(node, Tree) and node.data == "span":
            return (self.expr(node.children[0], outcomes), self.expr(node.children[1], outcomes))
        return self.expr(node, outcomes)

    def condition(self, node, outcomes: bool = True) -> E.Expr:
        return E.require_bool(self.expr(node, outcomes))

    def named_blocks(self, tree: Tree, build_one, kind: str) -> list:
        """Build each top-level block; a name may be defined once per file."""
        out: list = []
        seen: dict[str, Location] = {}
        for node in tree.children:
            item = build_one(node)
            if item.name in seen:
                raise InputError(item.where, f"{kind} '{item.name}' is already defined at {seen[item.name]}")
            seen[item.name] = item.where
            out.append(item)
        return out


# ---- specs --------------------------------------------------------------------

class SpecLoader:
    """Loads specs by path; `extends NAME` reads NAME.spec beside the child, else the shipped spec NAME.

    A spec's name (`spec NAME`) labels it in reports; `extends`, `specs` lines and
    command-line NAMEs find a spec by its file name, NAME.spec."""

    def __init__(self):
        self.cache: dict[Path, Spec] = {}
        self.loading: list[Path] = []
        self.probed: list[Path] = []  # where a spec was looked for and not found (prove's result cache)

    def load(self, path: Path, via: Location | None = None) -> Spec:
        """Load a spec; `via` is the `extends` line that asks for it, if any."""
        path = path.resolve() if path.exists() else path
        if path in self.cache:
            return self.cache[path]
        if path in self.loading:
            chain = " -> ".join(p.stem for p in self.loading + [path])
            raise InputError(via or str(path), f"specs extend each other in a cycle: {chain}")
        self.loading.append(path)
        try:
            text = read(path)
            spec = SpecBuilder(self, path, text).build(parse_text(text, str(path), "start_spec"))
        finally:
            self.loading.pop()
        self.cache[path] = spec
        return spec


class SpecBuilder(Builder):
    def __init__(self, loader: SpecLoader, path: Path, source: str = ""):
        super().__init__(str(path), source)
        self.loader = loader
        self.file = path

    def build(self, tree: Tree) -> Spec:
        name_tok, *rest = tree.children
        title = ""
        if rest and isinstance(rest[0], Token) and rest[0].type == "STRING":
            title = self.string(rest.pop(0))
        spec = Spec(name=str(name_tok), title=title, path=self.path)
        for i, stmt in enumerate(rest):
            getattr(self, stmt.data)(spec, stmt, first=i == 0)
        return spec

    def meta(self, nodes) -> tuple[tuple[str, ...], str]:
        cites = tuple(self.string(n.children[0]) for n in nodes if n.data == "cite")
        uncertain = " ".join(self.string(n.children[0]) for n in nodes if n.data == "uncertain")
        return cites, uncertain

    def statement(self, node: Tree) -> str:
        """A declaration's own words: its text up to its first `cite` or `uncertain`."""
        kids = [k for k in node.children if not (isinstance(k, Tree) and k.data in ("cite", "uncertain"))]
        text = self.spelling(node)
        if kids and text:
            end = getattr(kids[-1], "end_pos", None) or getattr(getattr(kids[-1], "meta", None), "end_pos", None)
            if end is not None:
                text = self.source[node.meta.start_pos:end]
        return " ".join(text.split())

    def extends(self, spec: Spec, node: Tree, first: bool):
        if not first:
            raise InputError(self.at(node), "'extends' must be the first statement of a spec")
        parent_name = str(node.children[0])
        parent_path = self.file.parent / f"{parent_name}.spec"
        if not parent_path.exists():
            self.loader.probed.append(parent_path)
            from .shipped import spec as shipped_spec  # a copy of xen.spec elsewhere still finds its defaults
            parent_path = shipped_spec(parent_name) or parent_path
        if not parent_path.exists():
            from . import shipped
            parent_path = shipped.spec(parent_name)
            if parent_path is None:
                raise InputError(self.at(node), f"no spec '{parent_name}': neither {parent_name}.spec beside this "
                                                f"one nor a shipped spec ({', '.join(shipped.names())})")
        parent = self.loader.load(parent_path, via=self.at(node))
        spec.facts = {k: list(v) for k, v in parent.facts.items()}
        spec.defaults = {k: list(v) for k, v in parent.defaults.items()}
        spec.parents = parent.parents + (parent.name,)

    def delivery(self, spec: Spec, node: Tree, first: bool):
        """`delivery fred` is the fact `set delivery = fred`."""
        word, *meta = node.children
        try:
            value = Delivery.parse(str(word))
        except ValueError as exc:
            raise InputError(self.at(word), f"unknown delivery '{word}': {exc}") from None
        cites, uncertain = self.meta(meta)
        spec.add(Fact("delivery", (value,), self.at(node), None, cites, uncertain, self.statement(node)))

    def knob(self, node: Tree):
        name = ".".join(str(k) for k in node.children)
        if name not in KNOB:
            if name.split(".")[0] in TABLE:
                raise InputError(self.at(node), f"'{name}': write table facts as "
                                                f"'{name.split('.')[0]} VECTORS field=value'")
            raise InputError(self.at(node), f"unknown knob '{name}'{E.suggest(name, KNOB)}")
        return KNOB[name]

    def value(self, knob_name: str, domain, node) -> object:
        text = "none" if isinstance(node, Tree) and not node.children else str(node.children[0])
        try:
            return domain.parse(text)
        except ValueError as exc:
            raise InputError(self.at(node), f"bad value '{text}' for {knob_name}: {exc}") from None

    def values(self, knob, node: Tree) -> tuple:
        if node.data == "value_range":
            lo, hi = (self.value(knob.name, knob.domain, Tree("value", [t], node.meta)) for t in node.children)
            return tuple(range(lo, hi + 1))
        if knob.name == "guest" and len(node.children) == 1 and not node.children[0].children:
            return ()  # `set guest = none`: no PV guests, no Xen guest layer
        return tuple(self.value(knob.name, knob.domain, v) for v in node.children)

    def when(self, nodes) -> E.Expr | None:
        conds = [n for n in nodes if isinstance(n, Tree) and n.data == "when"]
        return self.condition(conds[0].children[0], outcomes=False) if conds else None

    def set_fact(self, spec: Spec, node: Tree, first: bool):
        knob_node, values_node, *rest = node.children
        knob = self.knob(knob_node)
        values = self.values(knob, values_node)
        cites, uncertain = self.meta([n for n in rest if n.data in ("cite", "uncertain")])
        spec.add(Fact(knob.name, values, self.at(node), self.when(rest), cites, uncertain, self.statement(node)))

    def default_fact(self, spec: Spec, node: Tree, first: bool):
        knob_node, value_node, *rest = node.children
        knob = self.knob(knob_node)
        value = self.value(knob.name, knob.domain, value_node)
        cites, uncertain = self.meta([n for n in rest if n.data in ("cite", "uncertain")])
        spec.add(Fact(knob.name, (value,), self.at(node), self.when(rest), cites, uncertain, self.statement(node)),
                 default=True)

    def table_rows(self, node: Tree):
        table_tok, vectors, *rest = node.children
        table = TABLE[str(table_tok)]
        bounds = []
        for tok in vectors.children:
            v = int(str(tok), 0)
            if not 0 <= v <= 255:
                raise InputError(self.at(tok), f"vector {tok} is over 255")
            bounds.append(v)
        lo, hi = bounds[0], bounds[-1]
        if lo > hi:
            raise InputError(self.at(vectors), f"empty vector range {lo:#x}..{hi:#x}")
        assigns = [n for n in rest if n.data == "assign"]
        cites, uncertain = self.meta([n for n in rest if n.data in ("cite", "uncertain")])
        where, statement = self.at(node), self.statement(node)  # once: a range gives up to 256 facts each
        for a in assigns:
            field_name = str(a.children[0])
            if field_name not in table.fields:
                raise InputError(self.at(a), f"{table.name} has no field '{field_name}'; "
                                             f"it has {', '.join(table.fields)}")
            value = self.value(f"{table.name}.{field_name}", table.fields[field_name], a.children[1])
            for v in range(lo, hi + 1):
                yield Fact(table.knob_name(v, field_name), (value,), where, None, cites, uncertain, statement)

    def table_fact(self, spec: Spec, node: Tree, first: bool):
        for fact in self.table_rows(node):
            spec.add(fact)

    def table_default(self, spec: Spec, node: Tree, first: bool):
        for fact in self.table_rows(node):
            spec.add(fact, default=True)


# ---- invariants -----------------------------------------------------------------

EXPECTS = ("proved", "refuted", "vacuous")


@dataclass
class Invariant:
    name: str
    where: Location
    description: str = ""
    specs: list[tuple[str, Location]] = field(default_factory=list)
    cites: list[str] = field(default_factory=list)
    assumes: list[E.Expr] = field(default_factory=list)
    prove: E.Expr | None = None
    expect: str | None = None
    witness: E.Expr | None = None

    @property
    def guest_level(self) -> bool:
        exprs = self.assumes + [self.prove] + ([self.witness] if self.witness else [])
        return any(E.is_guest_level(e) for e in exprs)


class InvariantBuilder(Builder):
    def build(self, tree: Tree) -> list[Invariant]:
        return self.named_blocks(tree, self.invariant, "invariant")

    def invariant(self, node: Tree) -> Invariant:
        _keyword, name_tok, *fields_ = node.children
        inv = Invariant(str(name_tok), self.at(node))
        for f in fields_:
            getattr(self, "field_" + f.data)(inv, f)
        if inv.prove is None:
            raise InputError(inv.where, f"invariant '{inv.name}' has no 'prove' clause")
        if not inv.cites:
            raise InputError(inv.where, f"invariant '{inv.name}' cites no source: add a 'cite \"...\"' line")
        if inv.witness is not None and inv.expect != "refuted":
            raise InputError(inv.witness.where, "'witness' needs 'expect refuted'")
        return inv

    def field_description(self, inv: Invariant, node: Tree):
        inv.description = " ".join(self.string(s).strip() for s in node.children)

    def field_specs(self, inv: Invariant, node: Tree):
        inv.specs.extend((str(t), self.at(t)) for t in node.children)

    def field_cite(self, inv: Invariant, node: Tree):
        inv.cites.append(self.string(node.children[0]))

    def field_assume(self, inv: Invariant, node: Tree):
        inv.assumes.append(self.condition(node.children[0]))

    def field_prove(self, inv: Invariant, node: Tree):
        if inv.prove is not None:
            raise InputError(self.at(node), f"invariant '{inv.name}' has two 'prove' clauses; "
                                            f"join them with 'and'")
        inv.prove = self.condition(node.children[0])

    def field_expect(self, inv: Invariant, node: Tree):
        word = str(node.children[0])
        if word not in EXPECTS:
            raise InputError(self.at(node.children[0]), f"expect must be one of {', '.join(EXPECTS)}")
        inv.expect = word

    def field_witness(self, inv: Invariant, node: Tree):
        inv.witness = self.condition(node.children[0])


@dataclass
class Difference:
    """An intended difference between two specs: the configurations `when` names may differ."""

    name: str
    where: Location
    when: E.Expr | None = None
    description: str = ""
    cites: list[str] = field(default_factory=list)


class ExpectBuilder(Builder):
    """Reads a `pvsmt diff --expect` file: `difference NAME { when ... cite ... }` blocks."""

    sides = True

    def build(self, tree: Tree) -> list[Difference]:
        return self.named_blocks(tree, self.difference, "difference")

    def difference(self, node: Tree) -> Difference:
        _keyword, name_tok, *fields_ = node.children
        d = Difference(str(name_tok), self.at(node))
        for f in fields_:
            if f.data == "description":
                d.description = " ".join(self.string(s).strip() for s in f.children)
            elif f.data == "cite":
                d.cites.append(self.string(f.children[0]))
            elif d.when is not None:
                raise InputError(self.at(f), f"difference '{d.name}' has two 'when' clauses; join them with 'or'")
            else:
                d.when = self.condition(f.children[0], outcomes=False)
                if "idt" in d.when.names():
                    raise InputError(d.when.where, "the IDT belongs to each spec: an expected difference "
                                                   "names configurations (knobs, tt[...], old./new. system knobs)")
        if d.when is None:
            raise InputError(d.where, f"difference '{d.name}' has no 'when' clause")
        return d


def load_expected(path: Path) -> list[Difference]:
    text = read(path)
    return ExpectBuilder(str(path), text).build(parse_text(text, str(path), "start_expect"))


def load_invariants(path: Path) -> list[Invariant]:
    text = read(path)
    return InvariantBuilder(str(path), text).build(parse_text(text, str(path), "start_inv"))


def parse_value(text: str, where: str) -> E.Expr:
    """A number-valued expression given outside a file (a known-divergences entry)."""
    b = Builder(where, text)
    return E.require_int(b.expr(parse_text(text, where, "start_expr").children[0]))


def parse_condition(text: str, where: str) -> E.Expr:
    """An expression given on the command line (`--assume`)."""
    b = Builder(where, text)
    return b.condition(parse_text(text, where, "start_expr").children[0])


__all__ = ["Difference", "Invariant", "SpecLoader", "load_expected", "load_invariants", "parse_condition", "Guest"]
