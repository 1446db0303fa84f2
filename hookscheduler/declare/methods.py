"""Checking a declared method path without importing its module, when the module's source says enough.

``migrate`` must report a typo in a method path (``my_app.tasks.sned_digest``) before it writes anything, so
every method used to be imported. On a deploy that is most of the command: a ``tasks.py`` of 100 functions
takes about 2.4 ms to compile (0.24 s for 10,000 jobs, 2.4 s for 100,000) against 0.15 ms to read and scan
its source. So a module that is not imported yet is found on the path (no code of it runs) and its source is
scanned for the functions and classes it plainly defines at top level; a method named there is accepted.

The scan only ever says "defined": anything it cannot vouch for goes through the real import, with the same
errors as before (``does not import``, ``is not callable``, ``importing its module raised``). So a typo (a
name the source does not define) is always reported, by the import. The scan vouches for nothing in a module
whose top level runs code it cannot read: a decorator, an ``if`` / ``try`` / ``for`` / ``with`` block, a
call in an assignment, a bare expression, a relative import, an import of a top-level package that is not
installed, a line continuation, a statement it does not recognise. Comments and strings are blanked before
anything is read, and brackets are counted, so nothing inside a string or a multi-line value is taken for a
definition. A name also bound by an assignment or an import is not vouched for either. Nor does it vouch for
a module whose source does not compile (the import then reports the syntax error with its file and line), or
one that imports a module of the bench's own apps that does not exist (``import app.no_such_module``, checked
to the full path, without running the app's code), or a name that module does not define (``from app.tasks
import no_such_name``: neither bound at its top level nor a submodule of it). A module it cannot read plainly
(a module ``__getattr__``, a star import, names made through ``globals()`` or ``sys.modules``) is taken to
define the name.

What a scanned module no longer gets at ``migrate`` is a run of its top level: an error there that the scan
cannot see is reported by the worker when the job runs. That is: an import of a module of an installed
package (not the bench's apps) that is missing, an import that fails further down (a module of the app that
it imports and that itself imports something missing), and whatever that module's top level raises when run.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Iterable
from typing import Any

#: A comment or a string literal (any prefix, single or triple quotes, escapes): what the scan blanks out before
#: it reads anything, so that nothing inside a string (a column-0 ``def`` in a triple-quoted value) or a comment
#: is taken for code, and brackets are counted in code only. Each alternative's pieces start differently, so a
#: string that never closes costs linear time, not backtracking.
_LEXEMES = re.compile(
    r"#[^\n]*"
    r"|[rRbBuUfF]{0,2}(?:"
    r"'''(?:[^'\\]|\\[\s\S]|'(?!''))*'''"
    r'|"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""'
    r"|'(?:[^'\\\n]|\\[\s\S])*'"
    r'|"(?:[^"\\\n]|\\[\s\S])*"'
    r")"
)
#: One line starting at column 0: a statement, or a continuation inside brackets (indented lines are bodies).
_TOP_LINE = re.compile(r"^\S[^\n]*", re.M)
_DEF = re.compile(r"(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(")
_CLASS = re.compile(r"class[ \t]+(\w+)[ \t]*[(:]")
_ASSIGN = re.compile(r"(\w+)[ \t]*(?::[^=\n]*)?(?:[-+*/%&|^@]|//|>>|<<|\*\*)?=(?!=)")
_IMPORT = re.compile(r"from[ \t]+(\.*)([\w.]*)[ \t]+import\b|import[ \t]+([^\n]*)")
_NAMES = re.compile(r"\w+")
_MAIN_GUARD = re.compile(r'if[ \t]+__name__[ \t]*==[ \t]*"__main__"[ \t]*:[ \t]*$')
_INERT = re.compile(r'""[ \t]*$')  # a string on its own line (a docstring), once blanked
_MAIN = ('"__main__"', "'__main__'")
_IMPORT_WORD = re.compile(r"\bimport\b")

#: module name -> the names its source plainly defines as functions or classes (None: the scan vouches for
#: nothing); top-level package -> whether it is installed. Both are for one load: files change between loads.
_DEFINED: dict[str, frozenset[str] | None] = {}
_FINDABLE: dict[str, bool] = {}
#: module of the bench's apps -> its spec, found without running it (None: no such module); and -> the names
#: its top level binds (None: it may bind others too). For one load, as the above.
_APP_SPECS: dict[str, importlib.machinery.ModuleSpec | None] = {}
_BOUND: dict[str, frozenset[str] | None] = {}


def forget() -> None:
    """Drop what earlier scans found (each load reads the files as they are now)."""
    _DEFINED.clear()
    _FINDABLE.clear()
    _APP_SPECS.clear()
    _BOUND.clear()


#: At most this many modules are scanned for one app's hooks in the import probe's child (:func:`scan_modules`).
SCAN_LIMIT = 100


def scan_modules(names: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """What :func:`defined_by_source` would find for each module not imported in this process whose package is
    (at most :data:`SCAN_LIMIT`): the import probe's child scans the modules an app's hooks name, while the
    parent checks the previous app, and ships the results with the events (:func:`remember`). Only modules whose
    package the child has imported already (the app's own, by its hooks): finding one runs no code then, so
    nothing here can end or hang the child in the middle of another module's verdict."""
    out: dict[str, frozenset[str] | None] = {}
    for name in names:
        if len(out) >= SCAN_LIMIT:
            break
        package = name.rpartition(".")[0]
        if name and name not in sys.modules and (not package or package in sys.modules):
            out[name] = _scan_module(name)
    return out


def remember(scans: Any) -> None:
    """Take in what :func:`scan_modules` found in the probe's child (for this load: :func:`forget` drops it); a
    module this process scanned already, or anything not shaped as a scan, is left alone."""
    if not isinstance(scans, dict):
        return
    for name, names in scans.items():
        if isinstance(name, str) and name not in _DEFINED and (
                names is None or (isinstance(names, frozenset) and all(isinstance(n, str) for n in names))):
            _DEFINED[name] = names


def defined_by_source(method: str) -> bool:
    """True when ``method``'s module is not imported and its source plainly defines the name at top level as a
    function or class; False means "not known": the caller imports it."""
    module_name, _, attr = method.rpartition(".")
    if not module_name or not attr or not attr.isascii() or module_name in sys.modules:
        return False  # (a non-ASCII name is compared as Python compares identifiers, NFKC: by the import)
    if module_name in _DEFINED:
        names = _DEFINED[module_name]
    else:
        names = _DEFINED[module_name] = _scan_module(module_name)
    return names is not None and attr in names


def _scan_module(module_name: str) -> frozenset[str] | None:
    try:  # finding a submodule imports its parent package, as the import would (an app's package, already in)
        spec = importlib.util.find_spec(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException:  # a parent package that raises or exits: the real import reports it, in its words
        return None
    source = _source_of(spec) if spec is not None else None
    return scan_source(source, str(spec.origin)) if spec is not None and source is not None else None


def _source_of(spec: importlib.machinery.ModuleSpec) -> str | None:
    """The text of a module found on disk as Python source, or None (not source, or unreadable: the real import
    then reports it)."""
    if not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or not spec.origin:
        return None
    try:
        with open(spec.origin, "rb") as fh:
            return importlib.util.decode_source(fh.read())
    except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
        return None


def _blank(match: re.Match[str]) -> str:
    """A comment becomes nothing, a string ``""`` (``"__main__"`` stays, for the guard; an f-string with a
    replacement field keeps a ``()``, so that an assignment of it counts as a call)."""
    text = match.group()
    if text[0] == "#":
        return ""
    if text in _MAIN:
        return '"__main__"'
    return '""()' if "{" in text and "f" in text[:3].lower() else '""'


def _depth(text: str) -> int:
    """Brackets ``text`` opens minus those it closes (strings and comments already blanked)."""
    return (text.count("(") + text.count("[") + text.count("{")
            - text.count(")") - text.count("]") - text.count("}"))


def scan_source(source: str, filename: str = "<module>") -> frozenset[str] | None:
    """The functions and classes ``source`` plainly defines at top level, or None when its top level does
    anything the scan cannot vouch for, or the source does not compile (see the module docstring).

    Comments and strings are blanked first; then each top-level statement (a column-0 line outside
    brackets) must be a ``def``, a ``class``, an import, an assignment without a call, a lone string or the
    ``__main__`` guard. Brackets are counted through every line, so a column-0 line inside a multi-line value
    is read as the continuation it is, never as a statement. A quote or a backslash left over (a string the
    blanking could not close, a line continuation) refuses the module."""
    # nothing to blank without a comment or a string (and the blanking is half of the scan of such a module)
    clean = _LEXEMES.sub(_blank, source) if "#" in source or "'" in source or '"' in source else source
    if "\\" in clean or "'" in clean or clean.count('"') != 2 * clean.count('""') + 2 * clean.count('"__main__"'):
        return None
    defined: set[str] = set()
    rebound: set[str] = set()
    lines = list(_TOP_LINE.finditer(clean))
    depth, kind, imported_from = 0, "", ""
    for i, match in enumerate(lines):
        line = match.group()
        if depth == 0:  # a new top-level statement
            m = _DEF.match(line) or _CLASS.match(line)
            if m is not None:
                defined.add(m.group(1))
                kind = "def"
            elif _INERT.match(line) or _MAIN_GUARD.match(line):
                kind = "inert"
            elif (m := _IMPORT.match(line)) is not None:
                if m.group(1) or not _imports_findable(m.group(2) or "", m.group(3) or ""):
                    return None  # relative (which file it reads is the package's business) or not installed
                kind = "import"
                imported_from = m.group(2) or ""
            elif (m := _ASSIGN.match(line)) is not None:
                rebound.add(m.group(1))
                kind = "assign"
            else:
                return None  # a decorator, a block, a call, a tuple target: it may run or bind anything
        # this line and the indented ones after it, up to the next column-0 line
        span = clean[match.start():lines[i + 1].start() if i + 1 < len(lines) else len(clean)]
        if kind == "assign" and "(" in span:
            return None  # a call at import time: it may raise, or bind anything
        if kind == "import":
            rebound.update(_NAMES.findall(span))
            if not _app_imports_resolve(imported_from, span):
                return None  # a module of the bench's apps, or a name in it, that is not there
        depth += _depth(span)
        if depth < 0:
            return None
    if depth != 0:
        return None
    try:  # the whole module, once: a syntax error the line scan cannot see (``x = 1 +``) is the import's to report
        compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return frozenset(defined - rebound)


def _imports_findable(from_module: str, imported: str) -> bool:
    """Whether every top-level package this import statement names is installed (found without running it)."""
    if from_module:
        tops = [from_module.partition(".")[0]]
    else:
        tops = [part.split()[0].partition(".")[0] for part in imported.strip("()").split(",") if part.split()]
    for top in tops:
        if top in sys.modules:
            continue
        found = _FINDABLE.get(top)
        if found is None:
            try:
                found = importlib.machinery.PathFinder.find_spec(top) is not None or top in sys.builtin_module_names
            except (ImportError, ValueError):
                found = False
            _FINDABLE[top] = found
        if not found:
            return False
    return True


def _app_imports_resolve(from_module: str, statement: str) -> bool:
    """Whether an import statement (``statement``, its whole text, strings blanked) finds what it names in the
    bench's own apps: every module to its full path, and for ``from X import a, b`` each name defined in X or
    a submodule of it. Modules of other packages are not looked into (:func:`_imports_findable` found their
    package); anything this cannot read plainly is taken as there."""
    if from_module:
        if not _is_app(from_module):
            return True
        if _app_spec(from_module) is None:
            return False
        names = _IMPORT_WORD.split(statement, 1)[1].strip().strip("()").split(",")
        return all(_app_defines(from_module, part.split()[0]) for part in names if part.split())
    for part in statement.strip()[len("import"):].split(","):
        words = part.split()
        if words and _is_app(words[0]) and _app_spec(words[0]) is None:
            return False
    return True


def _is_app(module: str) -> bool:
    """Whether ``module`` belongs to one of the bench's apps (its top-level package lies in the bench's
    ``apps`` folder, put on ``sys.path`` by the loader)."""
    from .hooks import apps_paths  # late: hooks imports this module

    top = module.partition(".")[0]
    spec = _app_spec_of_top(top)
    where = spec.origin if spec is not None and spec.has_location else None
    if spec is not None and where is None and spec.submodule_search_locations:
        where = next(iter(spec.submodule_search_locations))
    return bool(where) and any(str(where).startswith(root.rstrip("/") + "/") for root in apps_paths())


def _app_spec_of_top(top: str) -> importlib.machinery.ModuleSpec | None:
    if top not in _APP_SPECS:
        try:
            _APP_SPECS[top] = importlib.machinery.PathFinder.find_spec(top)
        except (ImportError, ValueError):
            _APP_SPECS[top] = None
    return _APP_SPECS[top]


def _app_spec(module: str) -> importlib.machinery.ModuleSpec | None:
    """``module``'s spec, found package by package on the apps' folders without running any of them (finding
    it with the import system would run its packages' ``__init__``), or None when there is no such module."""
    if module in _APP_SPECS:
        return _APP_SPECS[module]
    parent, _, _ = module.rpartition(".")
    spec: importlib.machinery.ModuleSpec | None
    if not parent:
        spec = _app_spec_of_top(module)
    else:
        outer = _app_spec(parent)
        locations = outer.submodule_search_locations if outer is not None else None
        try:
            spec = importlib.machinery.PathFinder.find_spec(module, list(locations)) if locations else None
        except (ImportError, ValueError):
            spec = None
    if spec is None and module in sys.modules:  # imported already (a module an app put there itself)
        spec = getattr(sys.modules[module], "__spec__", None)
    _APP_SPECS[module] = spec
    return spec


#: What in a module's source may bind names that its statements do not show.
_DYNAMIC = ("__getattr__", "globals()", "sys.modules", "setattr(", "__dict__", "exec(", "import *")


def _app_defines(module: str, name: str) -> bool:
    """Whether ``from module import name`` finds ``name``: bound at the module's top level, or a submodule of
    it (a module of the bench's apps). True whenever the module's source cannot tell."""
    if name == "*":
        return True
    loaded = sys.modules.get(module)
    if loaded is not None and hasattr(loaded, name):
        return True
    spec = _app_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None and _app_spec(f"{module}.{name}") is not None:
        return True
    if module not in _BOUND:
        _BOUND[module] = _bound_names(spec)
    bound = _BOUND[module]
    return bound is None or name in bound


def _bound_names(spec: importlib.machinery.ModuleSpec) -> frozenset[str] | None:
    """Every name the module's top level may bind (in any branch of its blocks, not inside its functions and
    classes), or None when its source cannot tell (not source, unreadable, or binding names dynamically). A
    source that does not parse binds nothing: importing from it fails."""
    source = _source_of(spec)
    if source is None or any(sign in source for sign in _DYNAMIC):
        return None
    try:
        tree = ast.parse(source, str(spec.origin))
    except (SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            todo.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        todo.extend(ast.iter_child_nodes(node))
    return frozenset(names)
