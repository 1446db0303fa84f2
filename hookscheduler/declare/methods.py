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
installed, a line it does not recognise (prose of a multi-line docstring, for one). A name also bound by an
assignment or an import is not vouched for either. What a scanned module no longer gets at ``migrate`` is a
run of its top level: an error there that the scan cannot see (a syntax error inside a function body, a
submodule missing from an installed package) is reported by the worker when the job runs.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys

#: One statement line at column 0 (indented lines are bodies or continuations: not read).
_TOP_LINE = re.compile(r"^\S[^\n]*", re.M)
_DEF = re.compile(r"(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(")
_CLASS = re.compile(r"class[ \t]+(\w+)[ \t]*[(:]")
_ASSIGN = re.compile(r"(\w+)[ \t]*(?::[^=\n]*)?(?:[-+*/%&|^@]|//|>>|<<|\*\*)?=(?!=)([^\n]*)")
_IMPORT = re.compile(r"(?:from[ \t]+(\.*)([\w.]*)[ \t]+)?import[ \t]+(\([^)]*\)|[^\n]*)")
_NAMES = re.compile(r"\w+")
_DOCSTRING = re.compile(r"[rRuU]?(\"\"\"|\'\'\')")
_MAIN_GUARD = re.compile(r"""if[ \t]+__name__[ \t]*==[ \t]*(['"])__main__\1[ \t]*:""")
#: Column-0 lines that bind nothing and run nothing: comments, a one-line string (a docstring), closing
#: brackets of a multi-line statement.
_INERT = re.compile(r"""#|[)\]}]|[rRbBuU]{0,2}(?:'''.*'''|\"\"\".*\"\"\"|'[^'\n]*'|"[^"\n]*")[ \t]*(?:#.*)?$""")

#: module name -> the names its source plainly defines as functions or classes (None: the scan vouches for
#: nothing); top-level package -> whether it is installed. Both are for one load: files change between loads.
_DEFINED: dict[str, frozenset[str] | None] = {}
_FINDABLE: dict[str, bool] = {}


def forget() -> None:
    """Drop what earlier scans found (each load reads the files as they are now)."""
    _DEFINED.clear()
    _FINDABLE.clear()


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
    if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or not spec.origin:
        return None
    try:
        with open(spec.origin, "rb") as fh:
            source = importlib.util.decode_source(fh.read())
    except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
        return None
    return scan_source(source)


def scan_source(source: str) -> frozenset[str] | None:
    """The functions and classes ``source`` plainly defines at top level, or None when its top level does
    anything the scan cannot vouch for (see the module docstring)."""
    defined: set[str] = set()
    rebound: set[str] = set()
    pos = 0
    while (match := _TOP_LINE.search(source, pos)) is not None:
        line, pos = match.group(), match.end()
        m = _DEF.match(line) or _CLASS.match(line)
        if m is not None:
            defined.add(m.group(1))
            continue
        if _INERT.match(line) or _MAIN_GUARD.match(line):
            continue
        m = _DOCSTRING.match(line)
        if m is not None:  # a string over several lines (a module docstring): skip to its end
            end = source.find(m.group(1), match.start() + m.end())
            if end < 0:
                return None
            newline = source.find("\n", end)
            rest = source[end + 3:newline if newline >= 0 else len(source)].strip()
            if rest and not rest.startswith("#"):
                return None  # the string goes on into an expression
            pos = end + 3
            continue
        if line.startswith(("import", "from")):
            m = _IMPORT.match(source, match.start())
            if m is None or m.group(1) or not _imports_findable(m.group(2), m.group(3)):
                return None  # relative (which file it reads is the package's business) or not installed
            rebound.update(_NAMES.findall(m.group(3)))
            pos = max(pos, m.end())
            continue
        m = _ASSIGN.match(line)
        if m is not None and "(" not in m.group(2):
            rebound.add(m.group(1))
            continue
        return None  # a decorator, a block, a call, a tuple target, prose: it may run or bind anything
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
