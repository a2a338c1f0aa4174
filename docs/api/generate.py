"""Write the API reference (Markdown, one page per module) from the modules' docstrings.

Usage::

    python docs/api/generate.py            # rewrite docs/api/*.md
    python docs/api/generate.py OUTDIR     # write the pages somewhere else

The documented modules are the core's modules listed in :data:`CORE_MODULES` and every public module of
``sinr_adapters``, found by walking the package (:func:`adapter_modules`). The public API is each module's
``__all__``. A page holds the module's docstring, then every public
name: a class with its constructor's signature, its docstring and its public methods and properties
(those defined by sinr-codecs' own classes, inherited ones included), a function with its signature and
docstring, a constant with its value (when short) and its docstring (the string literal after the
assignment). numpydoc sections become Markdown: parameter lists become bullet lists and examples become
``pycon`` code blocks. Standard library only (``importlib``, ``inspect``, ``ast``): no Sphinx.

The test suite regenerates the pages into a temporary folder and fails if ``docs/api/`` differs
(``tests/test_api_docs.py``), so the reference never drifts from the code.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import itertools
import re
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CORE_MODULES: tuple[tuple[str, str], ...] = (
    ("sinr_codecs.codec", "the `sinr` numcodecs codec"),
    ("sinr_codecs.zarr3", "the Zarr format 3 array-to-bytes codec"),
    ("sinr_codecs.sparse", "SparseCode: a SINR-coded tensor"),
    ("sinr_codecs.options", "every SINR option, defined once"),
    ("sinr_codecs.limits", "safety limits of encoding and decoding"),
    ("sinr_codecs.errors", "the exceptions"),
    ("sinr_codecs.layout", "arrays to vectors and back"),
    ("sinr_codecs.dictionary", "the seeded dictionary"),
    ("sinr_codecs.weights", "whole models to Zarr stores and back"),
    ("sinr_codecs.registry", "adapter discovery"),
)
"""The documented modules of the core, in the index's order, with a one-line description each."""


"""The documented modules, in the index's order, with a one-line description each."""

OWN_PACKAGES = ("sinr_codecs", "sinr_adapters")
MAX_VALUE_REPR = 100
_SECTIONS_WITH_ITEMS = {"Parameters", "Other Parameters", "Attributes", "Returns", "Yields", "Raises",
                        "Warns", "Receives"}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


# ------------------------------------------------------------------------------------- docstrings


def _inline(text: str) -> str:
    """reStructuredText inline markup -> Markdown: roles and double backticks become code spans."""
    text = re.sub(r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const):`(~?)([^`]+)`",
                  lambda m: f"`{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _is_underline(line: str, title: str) -> bool:
    s = line.strip()
    return bool(s) and set(s) == {"-"} and len(s) >= max(3, len(title.strip()) - 1)


def _split_sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """``[(section title or "", lines)]`` of a cleaned numpydoc docstring."""
    out: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        if (i + 1 < len(lines) and line.strip() and not line.startswith(" ")
                and _is_underline(lines[i + 1], line)):
            out.append((line.strip(), []))
            i += 2
            continue
        out[-1][1].append(line)
        i += 1
    return out


def _prose(lines: list[str]) -> list[str]:
    """Free text: inline markup converted, ``::`` literal blocks and doctest runs fenced."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += ["```pycon", *textwrap.dedent("\n".join(block)).splitlines(), "```"]
            continue
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-1].rstrip()
            out.append(_inline(head[:-1] + ":" if head.endswith(":") else head))
            i += 1
            indent = len(line) - len(line.lstrip())
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            body = textwrap.dedent("\n".join(block)).strip("\n").splitlines()
            out += ["", "```text", *body, "```", ""]
            continue
        out.append(_inline(line))
        i += 1
    return out


_ENTRY = re.compile(r"[\w.*\[\]()`'\"-]+(,\s*[\w.*\[\]()`'\"-]+)*")


def _is_entry(line: str) -> bool:
    """Whether an unindented line of an items section starts an entry (``name : type``, a name, a type)."""
    s = line.strip()
    return " : " in s or bool(_ENTRY.fullmatch(s)) or (len(s.split()) <= 6 and not s.endswith("."))


def _items(lines: list[str]) -> list[str]:
    """numpydoc ``name : type`` entries with indented descriptions -> a bullet list; an unindented
    paragraph among them (a note after the entries) stays a paragraph."""
    out: list[str] = []
    entry: str | None = None
    desc: list[str] = []
    para: list[str] = []

    def flush() -> None:
        nonlocal entry, desc, para
        if entry is not None:
            name, sep, kind = entry.strip().partition(" : ")
            label = f"**{_inline(name.strip())}** : {_inline(kind.strip())}" if sep else f"**{_inline(entry.strip())}**"
            text = " ".join(d.strip() for d in desc if d.strip())
            out.append(f"- {label}" + (f": {_inline(text)}" if text else ""))
        if para:
            out.extend(["", _inline(" ".join(p.strip() for p in para)), ""])
        entry, desc, para = None, [], []

    for line in lines:
        if not line.strip():
            if para:
                flush()
            elif entry is not None:
                desc.append(line)
        elif line.startswith(" "):
            if entry is not None:
                desc.append(line)
            else:
                para.append(line)
        elif para:
            para.append(line)
        elif _is_entry(line):
            flush()
            entry = line
        else:
            flush()
            para.append(line)
    flush()
    return out


def markdown_doc(doc: str | None, level: int) -> str:
    """A numpydoc docstring as Markdown; section titles become bold lines (``level`` is unused by them)."""
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    parts: list[str] = []
    for title, body in _split_sections(lines):
        while body and not body[0].strip():
            body = body[1:]
        while body and not body[-1].strip():
            body = body[:-1]
        if title:
            parts += ["", f"**{title}**", ""]
            if title in _SECTIONS_WITH_ITEMS:
                parts += _items(body)
                continue
        parts += _prose(body)
    text = "\n".join(parts).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


# --------------------------------------------------------------------------------------- objects


def _clean(text: str) -> str:
    """Drop what changes from run to run (object addresses); show ``...`` defaults as written."""
    return _ADDRESS.sub("", text).replace("= Ellipsis", "= ...")


class _Annotation(str):
    """An annotation string shown unquoted in a signature."""

    def __repr__(self) -> str:
        return str(self)


def _signature(obj: Any, name: str, *, drop_first: bool = False) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = list(sig.parameters.values())[1 if drop_first else 0:]

    def ann(a: Any) -> Any:
        if a is inspect.Parameter.empty or a is inspect.Signature.empty:
            return a
        return _Annotation(a if isinstance(a, str) else inspect.formatannotation(a))

    sig = sig.replace(parameters=[p.replace(annotation=ann(p.annotation)) for p in params],
                      return_annotation=ann(sig.return_annotation))
    return _clean(f"{name}{sig}")


def _is_own(obj: Any) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod.split(".")[0] in OWN_PACKAGES


def _attribute_docs(source_obj: Any) -> dict[str, str]:
    """Docstrings of assignments (a string literal right after ``NAME = ...``) in a module or class body."""
    try:
        source = textwrap.dedent(inspect.getsource(source_obj))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    body = tree.body
    if body and isinstance(body[0], ast.ClassDef) and not inspect.ismodule(source_obj):
        body = body[0].body
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if not (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            continue
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name):
                docs[t.id] = nxt.value.value
    return docs


@functools.cache
def _module_attribute_docs(module_name: str) -> dict[str, str]:
    return _attribute_docs(sys.modules[module_name])


def _value_repr(value: Any) -> str | None:
    if inspect.ismodule(value):   # its repr names the file, which differs between checkouts
        return f"<module {value.__name__!r}>"
    try:
        text = _clean(repr(value))
    except Exception:  # pragma: no cover - a repr that fails is not shown
        return None
    return text if len(text) <= MAX_VALUE_REPR and "\n" not in text else None


def _members(cls: type) -> list[tuple[str, Any, str]]:
    """Public methods and properties of ``cls`` defined by this project's classes: ``[(name, raw, kind)]``."""
    seen: dict[str, tuple[Any, str]] = {}
    for klass in reversed(cls.__mro__):
        if not _is_own(klass):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(raw, property) or type(raw).__name__ == "cached_property":
                seen[name] = (raw, "property")
            elif isinstance(raw, classmethod):
                seen[name] = (raw, "classmethod")
            elif isinstance(raw, staticmethod):
                seen[name] = (raw, "staticmethod")
            elif inspect.isfunction(raw):
                seen[name] = (raw, "method")
            else:
                seen.pop(name, None)  # a class attribute overriding a method
    return [(name, raw, kind) for name, (raw, kind) in sorted(seen.items())]


def _method_block(cls: type, name: str, raw: Any, kind: str) -> list[str]:
    out = []
    if kind == "property":
        func = raw.fget if isinstance(raw, property) else raw.func
        out.append(f"#### `{cls.__name__}.{name}` (property)")
        doc = inspect.getdoc(raw) or inspect.getdoc(func)
    else:
        func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        bound = getattr(cls, name)
        sig = _signature(func, f"{cls.__name__}.{name}", drop_first=kind in ("method", "classmethod"))
        prefix = f"{kind} " if kind != "method" else ""
        out += [f"#### `{cls.__name__}.{name}`", "", "```python", f"{prefix}{sig}", "```"]
        doc = inspect.getdoc(bound) or inspect.getdoc(func)
    text = markdown_doc(doc, 5)
    if text:
        out += ["", text]
    return out + [""]


def _class_block(name: str, cls: type, module: str) -> list[str]:
    out = [f"### class `{name}`", ""]
    if cls.__module__ != module:
        out += [f"Defined in `{cls.__module__}`.", ""]
    bases = [b for b in cls.__bases__ if b is not object]
    base_text = f"  # bases: {', '.join(f'{b.__module__}.{b.__qualname__}' for b in bases)}" if bases else ""
    out += ["```python", _signature(cls, name) + base_text, "```", ""]
    text = markdown_doc(inspect.getdoc(cls) if cls.__doc__ else None, 4)
    if text:
        out += [text, ""]
    attrs = _attribute_docs(cls)
    public_attrs = {k: v for k, v in attrs.items() if not k.startswith("_")}
    for attr, doc in sorted(public_attrs.items()):
        out += [f"#### `{name}.{attr}`", "", markdown_doc(doc, 5), ""]
    for mname, raw, kind in _members(cls):
        out += _method_block(cls, mname, raw, kind)
    return out


def _function_block(name: str, func: Any, module: str) -> list[str]:
    out = [f"### `{name}`", ""]
    if getattr(func, "__module__", module) != module:
        out += [f"Defined in `{func.__module__}`.", ""]
    out += ["```python", _signature(func, name), "```", ""]
    text = markdown_doc(inspect.getdoc(func), 4)
    if text:
        out += [text, ""]
    return out


def _defining_doc(name: str, value: Any) -> tuple[str | None, str | None]:
    """The attribute docstring of a re-exported constant, from the module of this project that defines it."""
    for mod_name in sorted(sys.modules):
        mod = sys.modules[mod_name]
        if mod_name.split(".")[0] not in OWN_PACKAGES or getattr(mod, name, None) is not value:
            continue
        doc = _module_attribute_docs(mod_name).get(name)
        if doc is not None:
            return doc, mod_name
    return None, None


def _constant_block(name: str, value: Any, doc: str | None, where: str | None = None) -> list[str]:
    out = [f"### `{name}`", ""]
    if where is not None:
        out += [f"Defined in `{where}`.", ""]
    shown = _value_repr(value)
    if shown is not None:
        out += ["```python", f"{name} = {shown}", "```", ""]
    else:
        out += [f"A `{type(value).__name__}`.", ""]
    if doc:
        out += [markdown_doc(doc, 4), ""]
    return out


def module_page(module_name: str) -> str:
    """The Markdown page of one module."""
    mod = importlib.import_module(module_name)
    names = list(getattr(mod, "__all__", []))
    attr_docs = _attribute_docs(mod)
    out = [f"# `{module_name}`", "", "<!-- generated by docs/api/generate.py from the docstrings; do not edit -->", ""]
    text = markdown_doc(mod.__doc__, 2)
    if text:
        out += [text, ""]
    classes = [n for n in names if inspect.isclass(getattr(mod, n))]
    functions = [n for n in names if n not in classes and callable(getattr(mod, n))]
    constants = [n for n in names if n not in classes and n not in functions]
    if names:
        out += ["## Contents", ""]
        out += [f"- `{n}`" for n in names]
        out.append("")
    if classes:
        out += ["## Classes", ""]
        for n in classes:
            out += _class_block(n, getattr(mod, n), module_name)
    if functions:
        out += ["## Functions", ""]
        for n in functions:
            out += _function_block(n, getattr(mod, n), module_name)
    if constants:
        out += ["## Constants", ""]
        for n in constants:
            value = getattr(mod, n)
            doc, where = attr_docs.get(n), module_name
            if doc is None:
                doc, where = _defining_doc(n, value)
            out += _constant_block(n, value, doc, None if where == module_name else where)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"


def _summary(doc: str | None) -> str:
    """The first sentence of a module docstring, as Markdown (its one-line description in the index)."""
    first = " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())
    end = re.search(r"(?<!\bal)(?<!e\.g)(?<!i\.e)\.(\s+(?=[A-Z(])|$)", first)
    return _inline(first if end is None else first[:end.start()])


def adapter_modules() -> tuple[tuple[str, str], ...]:
    """Every public module of ``sinr_adapters`` (none named with a leading underscore), packages included,
    in import-name order, each described by the first sentence of its docstring."""
    import pkgutil

    package = importlib.import_module("sinr_adapters")
    names = ["sinr_adapters", *sorted(m.name for m in pkgutil.walk_packages(package.__path__, "sinr_adapters."))]
    public = [n for n in names if not any(part.startswith("_") for part in n.split("."))]
    return tuple((n, _summary(importlib.import_module(n).__doc__)) for n in public)


MODULES: tuple[tuple[str, str], ...] = CORE_MODULES + adapter_modules()
"""The documented modules, in the index's order, with a one-line description each."""


def index_page(modules: Iterable[tuple[str, str]]) -> str:
    lines = ["# API reference", "",
             "<!-- generated by docs/api/generate.py from the docstrings; do not edit -->", "",
             "Generated from the docstrings of each module's public names (`__all__`) by",
             "`python docs/api/generate.py`; the test suite fails when these pages are out of date.",
             "The folder `adapters/` is installed as the import package `sinr_adapters`.", ""]
    titles = (("sinr_codecs", "The core: `sinr_codecs`"), ("sinr_adapters", "INR adapters: `sinr_adapters`"))
    for package, title in titles:
        lines += [f"## {title}", ""]
        rooms: dict[str, list[str]] = {}
        for m, d in modules:
            if m.split(".")[0] == package:
                room = ".".join(m.split(".")[:2]) if package == "sinr_adapters" and m.count(".") else ""
                rooms.setdefault(room, []).append(f"- [`{m}`]({m}.md): {d}")
        for room, entries in rooms.items():
            if room:
                lines += [f"### `{room}`", ""]
            lines += [*entries, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def pages(modules: Iterable[tuple[str, str]] = MODULES) -> dict[str, str]:
    """``{file name: Markdown}`` of the whole reference: ``index.md`` and one page per module."""
    modules = list(modules)
    out = {"index.md": index_page(modules)}
    for m, _ in modules:
        out[f"{m}.md"] = module_page(m)
    return out


def write(outdir: str | Path = HERE) -> list[Path]:
    """Write :func:`pages` into ``outdir``, removing pages of modules no longer documented."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    new = pages()
    for old in outdir.glob("*.md"):
        if old.name not in new:
            old.unlink()
    written = []
    for name, text in new.items():
        path = outdir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = write(args[0] if args else HERE)
    print(f"wrote {len(paths)} pages to {paths[0].parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
