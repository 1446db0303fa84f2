"""Read every installed app's ``scheduler_events`` into immutable :class:`JobSpec` s.

Validation collects *every* problem before refusing, each naming the app, the file and the key, because a
deploy that fails on the first of five typos costs five deploys. Nothing here touches the database: ``migrate``
applies the specs only when the whole set is valid.

Every deploy loads every hook, so the per-entry cost matters (10,000 entries are a realistic bench): a cron
string is validated once per process however many apps and keys repeat it (its validity never changes), and a
method's module is looked up in ``sys.modules`` before going through the import machinery.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import marshal
import os
import reprlib
import select
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..config import Bench, hooks_file
from ..exceptions import HookError
from ..states import CatchUp, Overlap
from ..timing.cron import CronError, validate_cron
from ..timing.frequencies import CATCHUP_POLICIES, OVERLAP_POLICIES, SECTIONS, Section
from .methods import defined_by_source, remember, scan_modules
from .methods import forget as forget_scans

#: Declarations are user input of any size or depth: every value shown in a message goes through ``_r``.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 120
_REPR.maxlevel = 3
_MAX_PROBLEM = 1000

ENTRY_KEYS = ("method", "name", "queue", "timeout", "catchup", "catchup_limit", "overlap")
_ENTRY_KEY_SET = frozenset(ENTRY_KEYS)
# Column sizes of scheduled_job_type: SQLite would store a longer value, PostgreSQL would refuse it mid-migrate,
# so the loader refuses it up front and both databases behave the same.
MAX_NAME = 255
MAX_METHOD = 255
MAX_CRON = 140
MAX_APP = 140
MAX_TIMEOUT = 2**31 - 1  # an INTEGER column


class JobSpec(NamedTuple):
    """One declared job, as ``scheduled_job_type`` will hold it (the hooks-owned columns).

    A named tuple rather than a frozen dataclass: a deploy builds one per declared job (100,000 on a large
    bench), and a frozen dataclass's ``__init__`` costs four times as much. The fields from ``app`` to
    ``overlap`` are the definition a stored row is compared with (:data:`DEFINITION`), in this order."""

    name: str
    app: str
    method: str
    frequency: str
    cron_format: str
    queue: str
    timeout: int
    catchup: str = CatchUp.ONCE
    catchup_limit: int = 10
    overlap: str = Overlap.SKIP
    source: str = ""  # "app: path key" for messages

    def definition(self) -> dict[str, Any]:
        """The columns hooks own, for comparing with a stored row."""
        return dict(zip(DEFINITION, self[1:10], strict=True))


#: The columns hooks own, in :class:`JobSpec` order (``spec[1:10]``).
DEFINITION = ("app", "method", "frequency", "cron_format", "queue", "timeout", "catchup", "catchup_limit", "overlap")


def _purge_app_modules(apps: Iterable[str]) -> None:
    """Forget cached imports of the apps so a long-lived process (or a test) reads hooks as they are now."""
    prefixes = tuple(apps)
    for mod in [m for m in sys.modules if m in prefixes or m.startswith(tuple(p + "." for p in prefixes))]:
        del sys.modules[mod]


#: ``apps/`` folders this process put on ``sys.path`` (so that loading another bench can take them off again).
_APPS_PATHS: list[str] = []


def apps_paths() -> tuple[str, ...]:
    """The folders the bench's apps are imported from (its ``apps/``, and each app's folder in Frappe's
    layout), as :func:`ensure_apps_on_path` put them on ``sys.path``."""
    return tuple(_APPS_PATHS)


def ensure_apps_on_path(bench: Bench) -> None:
    """Put this bench's ``apps/`` first on ``sys.path``, and no other bench's.

    A process that loads two benches with an app of the same name (a test session, a long-lived API user) must
    import each bench's own app: merely appending would keep importing whichever bench came first, and modules
    already imported from the previous bench are forgotten for the same reason.
    """
    apps_path = str(bench.apps_path)
    paths = [apps_path, *frappe_layout_roots(bench.apps_path)]
    for old in _APPS_PATHS:
        while old in sys.path:
            sys.path.remove(old)
        if old != apps_path and not old.startswith(apps_path.rstrip("/") + "/"):
            _forget_modules_under(old)
    _APPS_PATHS[:] = paths
    for path in reversed(paths):
        while path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    # Files written since the last import (an edited hooks.py, a new app) must be seen now, not after the
    # directory's mtime happens to change at a coarser granularity.
    importlib.invalidate_caches()


def frappe_layout_roots(apps_dir: Path) -> list[str]:
    """``apps/<app>`` for every app in Frappe's layout (``apps/<app>/<app>/``: the repository holding the
    package), so that ``import <app>`` finds the package; a flat ``apps/<app>/__init__.py`` needs nothing.

    Such a repository root has no ``__init__.py``, so ``apps/`` alone would import it as an empty namespace
    package and find no ``hooks``: the regular package in ``apps/<app>`` wins over that namespace portion.
    """
    if not apps_dir.is_dir():
        return []
    return sorted(str(p) for p in apps_dir.iterdir()
                  if p.name.isidentifier() and not (p / "__init__.py").is_file() and (p / p.name).is_dir()
                  and ((p / p.name / "__init__.py").is_file() or (p / p.name / "hooks.py").is_file()))


def _forget_modules_under(folder: str) -> None:
    """Drop imported modules whose file lies under ``folder`` (another bench's apps must not answer imports)."""
    prefix = folder.rstrip("/") + "/"
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(prefix):
            del sys.modules[name]


def load_job_specs(bench: Bench, queues: Mapping[str, int], fresh: bool = True, builtin: bool = False,
                   apps: tuple[str, ...] | None = None, warnings: list[str] | None = None,
                   imports: bool = True, meanwhile: Callable[[], None] | None = None) -> list[JobSpec]:
    """Every job declared by the installed apps (``apps``, default the bench's), in install order (plus
    hookscheduler's own jobs when ``builtin``, as ``migrate`` asks); raise HookError listing all problems.
    An installed app without a ``hooks.py`` declares nothing: it is named in ``warnings`` (a typo in
    ``apps.txt`` or a layout we do not find would otherwise look like an app with no jobs).

    ``imports``: every hooks.py and every method's module ends up imported in this process (a worker loads
    them once before it forks its horses). ``migrate`` passes False: it only checks, so it takes each app's
    events from the probe's child and reads a method's module instead of importing it when its source
    plainly defines the method (:mod:`.methods`); the problems reported are the same for a typo.

    ``meanwhile`` is called once the probe's children are started, before this process waits for the first of
    them: work of the caller's that needs no hooks (``migrate`` reaches the databases then) overlaps their
    compiling instead of following it."""
    ensure_apps_on_path(bench)
    installed = bench.apps if apps is None else apps
    if fresh:
        _purge_app_modules(installed)
    forget_scans()
    problems: list[str] = []
    specs: list[JobSpec] = []
    found: list[str] = [] if warnings is None else warnings
    # Whatever an app prints while its modules import goes to stderr: stdout belongs to the command's output
    # (``migrate --format json`` must stay parseable).
    with contextlib.redirect_stdout(sys.stderr):
        _load_apps(bench, installed, queues, specs, problems, found, not imports, meanwhile)
    if builtin:
        from .builtin import builtin_specs  # late: builtin imports JobSpec from here
        specs.extend(builtin_specs(queues))
    _check_duplicates(specs, problems)
    if problems:
        raise HookError([p if len(p) <= _MAX_PROBLEM else p[:_MAX_PROBLEM - 3] + "..." for p in problems])
    return specs


def _load_apps(bench: Bench, apps: tuple[str, ...], queues: Mapping[str, int], specs: list[JobSpec],
               problems: list[str], warnings: list[str], check_only: bool,
               meanwhile: Callable[[], None] | None = None) -> None:
    shipped: dict[str, tuple[str, Any]] = {}
    # The probe's child imports the apps' hooks one after the other while this process checks each app as soon
    # as the child is done with it: the child's compiling of hooks.py and this process's checking overlap.
    modules = [f"{app}.hooks" for app in apps if len(app) <= MAX_APP]
    with ImportProbe(modules, ship=shipped if check_only else None) as probe:
        if meanwhile is not None:
            probe.start()
            meanwhile()
        for app in apps:
            if len(app) > MAX_APP:
                problems.append(f"{app[:40]}...: app name is longer than {MAX_APP} characters")
                continue
            module = f"{app}.hooks"
            trouble = probe.wait_for(module)
            if module in shipped:  # the probe's child imported it and sent its events: no second import here
                hooks_path, events = shipped[module]
                hooks_path = str(Path(hooks_path)) if hooks_path else str(bench.apps_path / app / "hooks.py")
                events = _checked_events(app, hooks_path, events, problems)
            else:
                events, hooks_path = _read_events(bench, app, problems, warnings, trouble)
            if events is not None:
                specs.extend(_normalise_app(app, hooks_path, events, queues, problems, check_only))


#: Seconds an app's hooks.py may take to import: one that waits on the network or a lock would otherwise hang
#: ``migrate`` (and every worker start) with no word of why.
IMPORT_TIME_LIMIT = 30.0
#: What the probe's child sends back of each hooks module it imported.
SHIPPED_ATTRIBUTE = "scheduler_events"


def probe_imports(modules: Sequence[str], limit: float | None = None,
                  ship: dict[str, tuple[str, Any]] | None = None) -> dict[str, str]:
    """Import ``modules`` in a forked child first, one after the other: the module names whose import did not
    finish, with why, in words (see :class:`ImportProbe`, which this runs to the end)."""
    with ImportProbe(modules, limit, ship) as probe:
        for module in modules:
            probe.wait_for(module)
        return dict(probe.trouble)


#: From this many modules to probe, on a host with several cores, two children import them (alternately) instead
#: of one: on a large bench the child's compiling of every hooks.py is what this process waits for.
PARALLEL_FROM = 16


class ImportProbe:
    """Import modules in a forked child first, one after the other, to learn which ones end the process
    (``os._exit``, a crash) or run past ``limit`` seconds (the child is then killed), each in words. An import
    that raises is not a problem here (the real import reports it); an imported module is not probed again.

    One child imports every module, saying after each one that it finished, so a bench of a hundred apps
    costs one fork, not a hundred (a fork per app was most of a 10,000-job migrate); after a module that
    ended or hung the child, a new child goes on with the next. The caller asks for each module's verdict in
    turn (:meth:`wait_for`) and can work on one module while the child imports the next. With
    :data:`PARALLEL_FROM` modules or more on a multi-core host, two such children (lanes) take every other
    module each and run at once, both started at the first :meth:`wait_for`: the caller, still asking in
    order, finds the next verdict ready while it works (1,000 apps: the children's compiling halved).

    With ``ship``, the child also sends each module's file and ``scheduler_events`` when :mod:`marshal` can
    carry them (plain dicts, lists, strings and numbers: what a hooks.py declares), and ``ship`` gets them by
    module name: the caller then needs no import of its own, which cost as much again (1,000 apps: about
    0.5 s). A module whose import raised, or whose value marshal refuses, is not in ``ship``: the caller
    imports it and sees what it holds, or the error, itself.

    Use it as a context manager: leaving it (an exception, a signal) kills and reaps the children at once, so
    none can outlive this process's interest in it."""

    def __init__(self, modules: Sequence[str], limit: float | None = None,
                 ship: dict[str, tuple[str, Any]] | None = None, lanes: int | None = None) -> None:
        queue = [m for m in dict.fromkeys(modules) if m not in sys.modules] if hasattr(os, "fork") else []
        if lanes is None:
            lanes = 2 if len(queue) >= PARALLEL_FROM and (os.cpu_count() or 1) > 1 else 1
        self.lanes = [_Lane(queue[i::lanes], limit, ship) for i in range(lanes)]
        self.lane_of = {m: lane for lane in self.lanes for m in lane.queue}
        self.started = False

    @property
    def trouble(self) -> dict[str, str]:
        """Module -> why it could not be imported safely, for the modules decided so far."""
        return {m: why for lane in self.lanes for m, why in lane.trouble.items()}

    def __enter__(self) -> ImportProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, module: str) -> str | None:
        """Why ``module`` could not be imported safely (None: it was, or it is not probed), once decided."""
        lane = self.lane_of.get(module)
        if lane is None:
            return None
        self.start()
        return lane.wait_for(module)

    def start(self) -> None:
        """Start every lane's child now (else at the first :meth:`wait_for`), all at once, so that they work
        side by side from the start."""
        if not self.started:
            self.started = True
            for lane in self.lanes:
                lane.prime()

    def close(self) -> None:
        """Kill and reap every child still running (done, or interrupted: never wait on one)."""
        try:
            for lane in self.lanes[1:]:
                lane.close()
        finally:
            self.lanes[0].close()


class _Lane:
    """One child importing its modules in turn (restarted after one that ends or hangs it): see
    :class:`ImportProbe`."""

    def __init__(self, modules: list[str], limit: float | None, ship: dict[str, tuple[str, Any]] | None) -> None:
        self.queue = modules
        self.index = {m: i for i, m in enumerate(self.queue)}
        self.done = 0  # queue[:done] are decided
        self.limit = IMPORT_TIME_LIMIT if limit is None else limit
        self.ship = ship
        self.trouble: dict[str, str] = {}
        self.pid = self.fd = -1
        self.buffer = bytearray()

    def prime(self) -> None:
        """Start the child now if modules are left and none runs."""
        if self.pid < 0 and self.done < len(self.queue):
            self._start(self.queue[self.done:])

    def wait_for(self, module: str) -> str | None:
        position = self.index[module]
        while self.done <= position:
            self._step()
        return self.trouble.get(module)

    def close(self) -> None:
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> int:
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        self.pid = self.fd = -1
        self.buffer.clear()
        return status

    def _step(self) -> None:
        """Start a child for the undecided modules if none runs, then read what it says next."""
        if self.pid < 0:
            self._start(self.queue[self.done:])
        ready, _, _ = select.select([self.fd], [], [], self.limit)
        if not ready:
            self.trouble[self.queue[self.done]] = (
                f"did not finish importing within {self.limit:g} s (it waits on something: the network, a lock, "
                "input?); a hooks.py must only declare")
            self.close()
            self.done += 1
            return
        got = os.read(self.fd, 1 << 20)
        if not got:  # the child is gone mid-import
            code = os.waitstatus_to_exitcode(self._reap())
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            self.trouble[self.queue[self.done]] = f"ended the process while importing ({how}: os._exit() or a crash)"
            self.done += 1
            return
        buffer = self.buffer
        buffer += got
        while len(buffer) >= 4 and len(buffer) >= 4 + (size := int.from_bytes(buffer[:4], "big")):
            if size and self.ship is not None:
                with contextlib.suppress(Exception):  # not what the child sent: the caller imports it
                    file, value, scans = marshal.loads(bytes(buffer[4:4 + size]))
                    self.ship[self.queue[self.done]] = (file, value)
                    remember(scans)
            del buffer[:4 + size]
            self.done += 1
        if self.done == len(self.queue):
            self.close()

    def _start(self, modules: list[str]) -> None:
        """Fork the child that imports ``modules`` and sends a frame after each: its length (4 bytes) and what
        :func:`_shipment` made of it (nothing unless shipping)."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: import each, say so, and leave without running any exit handler of the parent's
            try:  # whatever happens here (a write to a parent that stopped listening), the child never returns:
                os.close(read_end)  # a child that did would go on running its parent's program as a copy of it
                for module in modules:
                    payload = b""
                    if self.ship is None:
                        with contextlib.suppress(BaseException):
                            importlib.import_module(module)
                    else:
                        payload = _shipment(module)
                    frame = memoryview(len(payload).to_bytes(4, "big") + payload)
                    while frame:
                        frame = frame[os.write(write_end, frame):]
            finally:
                os._exit(0)
        os.close(write_end)
        self.pid, self.fd = pid, read_end


def _shipment(module: str) -> bytes:
    """What the child sends of ``module`` after importing it: marshal of (file, events, the scans of the modules
    the events name methods in), or b"" (nothing). Scanning here, while the parent checks the previous app, takes
    the method modules' finding, reading and scanning (a third of a large bench's check) off the parent."""
    try:
        mod = importlib.import_module(module)
        events = getattr(mod, SHIPPED_ATTRIBUTE, None)
        file = str(getattr(mod, "__file__", None) or "")
    except BaseException:  # raised: the parent's own import says what
        return b""
    try:
        scans = scan_modules(_method_modules(events))
    except BaseException:  # whatever it was, the parent scans for itself
        scans = {}
    try:
        return marshal.dumps((file, events, scans))
    except BaseException:  # unmarshallable: the parent's own import sees what it holds
        return b""


def _method_modules(events: Any) -> dict[str, None]:
    """The modules of the methods ``events`` names (entries as strings or dicts with a ``method``), in order;
    anything else is the parent's to report."""
    out: dict[str, None] = {}
    if not isinstance(events, dict):
        return out
    for value in events.values():
        for group in (value.values() if isinstance(value, dict) else [value]):
            for entry in (group if isinstance(group, (list, tuple)) else [group]):
                method = entry.get("method") if isinstance(entry, dict) else entry
                if isinstance(method, str):
                    out[method.strip().rpartition(".")[0]] = None
    return out


def _read_events(bench: Bench, app: str, problems: list[str], warnings: list[str],
                 trouble: str | None = None) -> tuple[Any, str]:
    """The app's ``scheduler_events`` and its hooks file; ``trouble``: why probing its import failed."""
    guess = bench.apps_path / app / "hooks.py"
    where = str(hooks_file(bench.apps_path, app) or guess)  # Frappe's layout: apps/<app>/<app>/hooks.py
    if trouble is not None:
        problems.append(f"{app}: {where}: hooks.py {trouble}; fix the file")
        return None, where
    try:
        module = importlib.import_module(f"{app}.hooks")
    except ModuleNotFoundError as exc:
        if exc.name in (app, f"{app}.hooks"):
            if exc.name == app:
                problems.append(
                    f"{app}: app is listed as installed but cannot be imported (no {bench.apps_path / app}); "
                    "add it under apps/ or remove it from sites/apps.txt"
                )
            else:
                warnings.append(f"{app}: installed but has no hooks.py (looked for {guess} and "
                                f"{bench.apps_path / app / app / 'hooks.py'}); it declares no jobs")
            return None, where
        problems.append(f"{app}: {where}: importing hooks.py failed: {exception_line(exc)}")
        return None, where
    except KeyboardInterrupt:  # the operator's Ctrl-C
        raise
    except BaseException as exc:  # a hooks.py calling sys.exit() or raising a BaseException must not end migrate
        problems.append(f"{app}: {where}: hooks.py raised {exception_line(exc)}; fix the file")
        return None, where
    where = str(Path(getattr(module, "__file__", where)))
    return _checked_events(app, where, getattr(module, "scheduler_events", None), problems), where


def _checked_events(app: str, where: str, events: Any, problems: list[str]) -> Any:
    """``events`` when it is a dict (None: the app declares nothing, or a problem is listed)."""
    if events is None:
        return None
    if not isinstance(events, dict):
        problems.append(
            f"{app}: {where}: scheduler_events must be a dict of section -> list, not {type(events).__name__}"
        )
        return None
    return events


def _normalise_app(
    app: str, where: str, events: Mapping[Any, Any], queues: Mapping[str, int], problems: list[str],
    scan: bool = False,
) -> list[JobSpec]:
    out: list[JobSpec] = []
    for key, value in events.items():
        section = SECTIONS.get(key) if isinstance(key, str) else None
        if section is None:
            import difflib  # an error path: not imported by every migrate

            hint = difflib.get_close_matches(key, list(SECTIONS), n=1) if isinstance(key, str) else []
            problems.append(
                f"{app}: {where}: scheduler_events[{_r(key)}]: unknown section"
                + (f"; did you mean {hint[0]!r}?" if hint else f"; valid sections: {', '.join(SECTIONS)}")
            )
            continue
        if section.is_cron:
            if not isinstance(value, dict):
                problems.append(
                    f"{app}: {where}: scheduler_events[{_r(key)}] must map cron strings to lists of methods, "
                    f"not {type(value).__name__}"
                )
                continue
            for cron, entries in value.items():
                loc = f"{app}: {where}: scheduler_events[{_r(key)}][{_r(cron)}]"
                try:
                    cron_format = _valid_cron(cron) if isinstance(cron, str) else None
                except CronError as exc:
                    problems.append(f"{loc}: {exc}")
                    continue
                if cron_format is None:
                    problems.append(f"{loc}: a cron key must be a string like '15 18 * * *'")
                    continue
                if len(cron_format) > MAX_CRON:
                    problems.append(f"{loc}: cron string is {len(cron_format)} characters long, at most {MAX_CRON} "
                                    "fit; use ranges and steps (0-30/5) instead of long lists")
                    continue
                out.extend(_entries(app, where, loc, section, cron_format, entries, queues, problems, scan))
        else:
            loc = f"{app}: {where}: scheduler_events[{_r(key)}]"
            out.extend(_entries(app, where, loc, section, "", value, queues, problems, scan))
    return out


def _entries(
    app: str, where: str, loc: str, section: Section, cron_format: str, entries: Any,
    queues: Mapping[str, int], problems: list[str], scan: bool = False,
) -> list[JobSpec]:
    if isinstance(entries, (str, dict)):
        entries = [entries]  # Frappe's append_hook turns a scalar into a one-element list
    if not isinstance(entries, (list, tuple)):
        problems.append(f"{loc}: must be a list of dotted method paths, not {type(entries).__name__}")
        return []
    out = []
    # The common entry, a bare method path, with the section's defaults: checked here without the options
    # machinery (per entry it cost as much as the rest of a deploy's migrate); anything else, or a section whose
    # defaults are themselves invalid, goes through _entry, which lists every problem.
    queue = section.default_queue
    timeout = queues.get(queue, 300)
    plain = (queue in queues and isinstance(timeout, int) and not isinstance(timeout, bool)
             and 0 < timeout <= MAX_TIMEOUT)
    frequency = section.frequency
    once, skip = CatchUp.ONCE, Overlap.SKIP
    for i, entry in enumerate(entries):
        if plain and entry.__class__ is str:
            method = entry.strip()
            if method and len(method) <= MAX_METHOD and method.isprintable():
                error = check_method(method, scan)
                if error:
                    problems.append(f"{loc}[{i}]: {error}")
                else:
                    out.append(JobSpec(method, app, method, frequency, cron_format, queue, timeout, once, 10, skip,
                                       f"{loc}[{i}]"))
                continue
        spec = _entry(app, f"{loc}[{i}]", section, cron_format, entry, queues, problems, scan)
        if spec is not None:
            out.append(spec)
    return out


def _entry(
    app: str, loc: str, section: Section, cron_format: str, entry: Any, queues: Mapping[str, int],
    problems: list[str], scan: bool = False,
) -> JobSpec | None:
    options: dict[str, Any]
    if isinstance(entry, str):
        options = {"method": entry}
    elif isinstance(entry, dict):
        options = entry if entry.__class__ is dict else dict(entry)  # only read: no copy of a plain dict
        unknown = [] if _ENTRY_KEY_SET.issuperset(options) else [k for k in options if k not in ENTRY_KEYS]
        if unknown:
            problems.append(f"{loc}: unknown option(s) {', '.join(map(_r, unknown))}; allowed: {', '.join(ENTRY_KEYS)}")
            return None
    else:
        problems.append(f"{loc}: an entry must be a dotted path string or a dict, not {type(entry).__name__}")
        return None
    count = len(problems)
    method = options.get("method")
    if not isinstance(method, str) or not method.strip():
        problems.append(f"{loc}: 'method' must be a dotted path string such as 'my_app.tasks.run'")
        return None
    method = method.strip()
    if len(method) > MAX_METHOD:
        problems.append(f"{loc}: method {_r(method)} is longer than {MAX_METHOD} characters")
        return None
    error = check_method(method, scan)
    if error:
        problems.append(f"{loc}: {error}")
    name = options.get("name", method)
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        problems.append(f"{loc}: 'name' must be a printable string of 1-{MAX_NAME} characters")
        name = method
    queue = options.get("queue", section.default_queue)
    if not isinstance(queue, str) or queue not in queues:
        problems.append(f"{loc}: unknown queue {_r(queue)}; valid queues: {', '.join(queues)} "
                        "(custom queues are declared under 'workers' in common_site_config.json)")
        queue = section.default_queue
    timeout = options.get("timeout", queues.get(queue, 300))
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT:
        problems.append(f"{loc}: 'timeout' must be a whole number of seconds from 1 to {MAX_TIMEOUT}, "
                        f"got {_r(timeout)}")
    catchup = options.get("catchup", CatchUp.ONCE)
    if catchup not in CATCHUP_POLICIES:
        problems.append(f"{loc}: 'catchup' must be one of {', '.join(CATCHUP_POLICIES)}, got {_r(catchup)}")
    limit = options.get("catchup_limit", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        problems.append(f"{loc}: 'catchup_limit' must be a whole number from 1 to 1000, got {_r(limit)}")
    overlap = options.get("overlap", Overlap.SKIP)
    if overlap not in OVERLAP_POLICIES:
        problems.append(f"{loc}: 'overlap' must be one of {', '.join(OVERLAP_POLICIES)}, got {_r(overlap)}")
    if len(problems) != count:
        return None
    # positional (JobSpec's field order): a quarter of a large bench's entries come through here
    return JobSpec(name.strip(), app, method, section.frequency, cron_format, queue, timeout, catchup, limit, overlap,
                   loc)


@functools.lru_cache(maxsize=4096)
def _valid_cron(expr: str) -> str:
    """:func:`validate_cron`, once per distinct string (an invalid one raises every time: not cached)."""
    return validate_cron(expr)


def resolve_method(method: str) -> Any:
    """Import ``pkg.module.func`` and return the attribute (raises ImportError / AttributeError)."""
    module_name, _, attr = method.rpartition(".")
    if not module_name or not attr:
        raise ImportError(f"{method!r} is not a dotted path (module.function)")
    obj: Any = sys.modules.get(module_name)
    if obj is None or getattr(obj, "__spec__", None) is None or getattr(obj.__spec__, "_initializing", False):
        obj = importlib.import_module(module_name)  # not imported yet, or still importing: the real machinery
    return getattr(obj, attr)


def check_method(method: str, scan: bool = False) -> str | None:
    """None when ``method`` imports and is callable, else a one-line reason. With ``scan``, a module that is
    not imported yet and whose source plainly defines the name is not imported (see :mod:`.methods`): the
    import would cost most of a deploy's ``migrate``; anything else, a typo first of all, is imported and
    reported as it says."""
    if scan and defined_by_source(method):
        return None
    try:
        obj = resolve_method(method)
    except (ImportError, AttributeError) as exc:
        return f"method {_r(method)} does not import: {exception_line(exc)}"
    except (Exception, SystemExit) as exc:
        return f"method {_r(method)}: importing its module raised {exception_line(exc)}"
    if not callable(obj):
        return f"method {_r(method)} is not callable (it is a {type(obj).__name__})"
    return None


def _check_duplicates(specs: list[JobSpec], problems: list[str]) -> None:
    seen: dict[str, JobSpec] = {}
    for spec in specs:
        first = seen.get(spec.name)
        if first is None:
            seen[spec.name] = spec
            continue
        problems.append(
            f"{spec.source}: job {spec.name!r} is declared twice (also at {first.source}); "
            "give each entry a distinct 'name', e.g. {'method': ..., 'name': '...'}"
        )


def _r(value: Any) -> str:
    """``repr`` bounded in length and depth (a hooks.py may hold a million-element or 100,000-deep value). A short
    string's is its ``repr``, as reprlib would give it, without reprlib's machinery (every section and cron key
    of every app is shown in its entries' locations)."""
    if value.__class__ is str and len(value) <= _REPR.maxstring:
        text = repr(value)
        if len(text) <= _REPR.maxstring:
            return text
    return _REPR.repr(value)


def exception_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters. A syntax error (an ``IndentationError`` too) also
    names its file and line, which :func:`traceback.format_exception_only` puts on lines of their own: without
    them the operator of a bench of many apps does not know which file to open, nor where (a method's module is
    not the hooks.py the message is about). The location is kept whole when the message is cut."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        where = f" ({exc.filename}, line {exc.lineno})"
        head = f"{type(exc).__name__}: {exc.msg}" if exc.msg else type(exc).__name__
        head = " ".join(head.split())
        room = max(300 - len(where), 40)
        return (head if len(head) <= room else head[:room - 3] + "...") + where
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    line = text[-1] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
