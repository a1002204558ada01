"""Ownership checks that import-linter cannot express; run by scripts/check.sh.

Owns six checks over the product packages (mesoslite/, frameworks/):

``spawn``
    Only the containerizers (mesoslite/agent/containerizer/) and mesoslite/proc.py start
    or signal processes.  import-linter sees imports only, so this reads the code: imports
    of subprocess, multiprocessing, pty, asyncio.subprocess, concurrent.futures.process (and
    ProcessPoolExecutor); any use (call or reference) of os.fork/forkpty/posix_spawn(p)/
    exec*/spawn*/system/popen/kill/killpg, signal.pthread_kill, psutil.Process/Popen,
    asyncio.create_subprocess_exec/shell and a loop's subprocess_exec/subprocess_shell.
``tornado-web``
    Only ``*/http.py``, ``api/``, ``webui/`` and the CLI import
    ``tornado.web`` (import-linter knows third-party packages only as a whole, so it
    cannot tell tornado.web from tornado.ioloop).
``pure``
    A module whose docstring's first line says ``(PURE)`` or ``(PURE: ...)`` imports no I/O
    module at any depth (inside functions too; ``if TYPE_CHECKING:`` blocks excepted),
    reads no clock (no time.time/monotonic/perf_counter/sleep, datetime.now/utcnow/today,
    asyncio.sleep or the system clock object: time is injected), and is a source of one of
    the two pure contracts of .importlinter (``pure-cores-no-io``, ``pure-parts-no-io``),
    itself or through its package, so that its indirect imports are checked too.
``runtime``
    Importing a pure core in a fresh interpreter loads no I/O package.  Importing
    ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` too, which import-linter does not
    follow.  The cores are the ``source_modules`` of the ``pure-cores-no-io`` contract in
    .importlinter (with every module of a package named there).  Likewise importing the
    executor loads no mesoslite.agent module.
``layered``
    Every top-level module and package of mesoslite/ (and the frameworks package) has a
    place in the ``layers`` contract of .importlinter: a new one cannot slip past it.
``long-functions``
    No function is longer than 80 lines (the house rule), counted from ``def`` to its
    last line.

A breach that a restructuring leaves for a while can be listed in ``PENDING`` with its
reason: reported, not failed.  A pending entry that no longer breaks anything is reported
so that it can be deleted.

Usage: ``python3 scripts/contracts.py [--root DIR] [--verbose]``; exit status 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("mesoslite", "frameworks")

# ----------------------------------------------------------------------------- spawn
SPAWN_ALLOWED = ("mesoslite/agent/containerizer/", "mesoslite/proc.py", "mesoslite/proc/")
SPAWN_MODULES = ("subprocess", "multiprocessing", "pty", "asyncio.subprocess",
                 "concurrent.futures.process", "concurrent.futures.ProcessPoolExecutor")
_OS_SPAWN = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen", "kill",
             "killpg", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp",
             "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve",
             "spawnvp", "spawnvpe")
SPAWN_NAMES = (*(f"os.{name}" for name in _OS_SPAWN), "signal.pthread_kill", "psutil.Process",
               "psutil.Popen", "asyncio.create_subprocess_exec",
               "asyncio.create_subprocess_shell")
SPAWN_METHODS = ("subprocess_exec", "subprocess_shell")

# ------------------------------------------------------------------------------ tornado.web
WEB_MODULE = "tornado.web"

# ------------------------------------------------------------------------------- pure
PURE_MARK = re.compile(r"\(PURE(\)|:)")
IO_MODULES = ("zmq", "kazoo", "tornado", "docker", "requests", "urllib3", "psutil",
              "subprocess", "multiprocessing", "pty", "asyncio", "socket", "select",
              "selectors", "ssl", "threading", "concurrent", "http", "urllib",
              "mesoslite.transport", "mesoslite.coordination", "mesoslite.proc")
CLOCK_NAMES = ("time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns",
               "time.perf_counter", "time.perf_counter_ns", "time.sleep",
               "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
               "datetime.date.today", "asyncio.sleep", "mesoslite.clock.SYSTEM_CLOCK",
               "mesoslite.clock.SystemClock")

# ---------------------------------------------------------------------- long functions
MAX_FUNCTION_LINES = 80

# ----------------------------------------------------------------------------- runtime
RUNTIME_IO = ("zmq", "kazoo", "tornado", "docker", "requests", "urllib3", "psutil",
              "subprocess", "multiprocessing", "asyncio", "socket", "selectors", "ssl",
              "mesoslite.transport", "mesoslite.coordination", "mesoslite.proc")
PURE_CONTRACT = "importlinter:contract:pure-cores-no-io"
#: Every module marked PURE is a source of one of these (itself or through its package).
PURE_CONTRACTS = (PURE_CONTRACT, "importlinter:contract:pure-parts-no-io")

# ----------------------------------------------------------------------------- layered
LAYERS_CONTRACT = "importlinter:contract:layers"
#: Modules whose import must load no mesoslite.agent module (the executor is launched by
#: the agent as a separate process and shares only the lower modules with it).
EXECUTOR_MODULES = ("mesoslite.executor", "mesoslite.executor.command",
                    "mesoslite.executor.driver")

#: Breaches a restructuring leaves for a while: (check, where) -> why.  Empty: every
#: check holds on the whole tree.
PENDING: dict[tuple[str, str], str] = {}


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    """True when ``name`` is one of ``prefixes`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class _Scan(ast.NodeVisitor):
    """One module's imports (with aliases resolved) and the dotted names it uses."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.aliases: dict[str, str] = {}
        self.imports: list[tuple[int, str]] = []  # (line, module or module.name)
        self.uses: list[tuple[int, str]] = []     # (line, resolved dotted name)
        self.methods: list[tuple[int, str]] = []  # (line, attribute name)
        self._type_checking = 0

    def visit_If(self, node: ast.If) -> None:
        """Skip ``if TYPE_CHECKING:`` bodies: nothing in them is imported at run time."""
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        """``import a.b [as c]``."""
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top
            if not self._type_checking:
                self.imports.append((node.lineno, alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        """``from a import b [as c]`` (relative imports resolved against the module)."""
        base = node.module or ""
        if node.level:
            parts = self.module.split(".")[: -node.level]
            base = ".".join([*parts, base] if base else parts)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self.aliases[alias.asname or alias.name] = full
            if not self._type_checking:
                self.imports.append((node.lineno, full))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        """``a.b.c``: record the dotted name with ``a`` resolved through the imports."""
        self.methods.append((node.lineno, node.attr))
        dotted = _dotted(node)
        if dotted is not None:
            head, _, rest = dotted.partition(".")
            if head in self.aliases:
                self.uses.append((node.lineno, f"{self.aliases[head]}.{rest}"))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        """A bare name imported with ``from a import name``."""
        if node.id in self.aliases:
            self.uses.append((node.lineno, self.aliases[node.id]))


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _modules(root: Path) -> Iterator[tuple[str, str, ast.Module]]:
    """(path relative to root, dotted module name, tree) of every product module."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            name = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
            yield rel, name, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _check_spawn(rel: str, scan: _Scan) -> list[str]:
    if rel.startswith(SPAWN_ALLOWED):
        return []
    found = [f"{rel}:{line}: imports {name}" for line, name in scan.imports
             if _matches(name, SPAWN_MODULES)]
    found += [f"{rel}:{line}: uses {name}" for line, name in scan.uses
              if _matches(name, SPAWN_NAMES)]
    found += [f"{rel}:{line}: calls .{attr}()" for line, attr in scan.methods
              if attr in SPAWN_METHODS]
    return found


def _check_web(rel: str, scan: _Scan) -> list[str]:
    parts = rel.split("/")
    if parts[-1] == "http.py" or "api" in parts[:-1] or "webui" in parts[:-1] \
            or rel == "mesoslite/cli.py":
        return []
    return [f"{rel}:{line}: imports {name}" for line, name in scan.imports
            if _matches(name, (WEB_MODULE,))]


def _check_pure(rel: str, name: str, tree: ast.Module, scan: _Scan,
                contracted: tuple[str, ...]) -> list[str]:
    doc = ast.get_docstring(tree) or ""
    if not PURE_MARK.search(doc.split("\n", 1)[0]):
        return []
    # A module may use its own package (coordination's pure parts import each other).
    own_package = name if rel.endswith("/__init__.py") else name.rsplit(".", 1)[0]
    io = tuple(m for m in IO_MODULES if not _matches(own_package, (m,)))
    found = [f"{rel}:{line}: PURE module imports {mod}" for line, mod in scan.imports
             if _matches(mod, io)]
    found += [f"{rel}:{line}: PURE module reads the clock: {used}" for line, used in scan.uses
              if _matches(used, CLOCK_NAMES)]
    if not _matches(name, contracted):
        found.append(f"{rel}:1: marked PURE but a source of neither "
                     f"{' nor '.join(c.rsplit(':', 1)[1] for c in PURE_CONTRACTS)} "
                     "in .importlinter")
    return found


def _check_length(rel: str, tree: ast.Module) -> list[str]:
    return [f"{rel}:{node.lineno}: {node.name} has {length} lines (at most {MAX_FUNCTION_LINES})"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and (length := (node.end_lineno or node.lineno) - node.lineno + 1)
            > MAX_FUNCTION_LINES]


def _contracts(root: Path) -> configparser.ConfigParser:
    """The import contracts of ``root``'s .importlinter."""
    config = configparser.ConfigParser()
    config.read(root / ".importlinter", encoding="utf-8")
    return config


def _contract_modules(config: configparser.ConfigParser, contract: str, option: str
                      ) -> list[str]:
    """The module names listed under ``option`` of ``contract`` (`a | b` lines split)."""
    text = config.get(contract, option, fallback="")
    return [name.strip("()") for name in text.replace("|", " ").split()]


def _check_layered(root: Path, config: configparser.ConfigParser) -> list[str]:
    """Top-level modules of mesoslite/ and packages of frameworks/ missing from the layers."""
    layered = set(_contract_modules(config, LAYERS_CONTRACT, "layers"))
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).iterdir()):
            if path.name.startswith(("_", ".")) or not (
                    path.suffix == ".py" or (path / "__init__.py").is_file()):
                continue
            top = f"{package}.{path.stem}"
            if not any(_matches(top, (name,)) or name == package for name in layered):
                found.append(f"{top} has no place in the layers contract of .importlinter")
    return found


def _runtime_targets(root: Path, config: configparser.ConfigParser
                     ) -> list[tuple[str, tuple[str, ...]]]:
    """(module, forbidden prefixes) for the runtime check."""
    cores = _contract_modules(config, PURE_CONTRACT, "source_modules")
    targets: list[tuple[str, tuple[str, ...]]] = []
    for core in cores:
        base = root / core.replace(".", "/")
        subs = [core]
        if base.is_dir():
            subs += [f"{core}.{p.stem}" for p in sorted(base.glob("*.py"))
                     if p.stem != "__init__"]
        targets += [(sub, RUNTIME_IO) for sub in subs]
    targets += [(mod, ("mesoslite.agent",)) for mod in EXECUTOR_MODULES]
    return targets


# Runs in a fresh interpreter: one forked child per module imports it and reports the
# forbidden modules it loaded, so every import starts from the same clean state without
# paying for an interpreter start each time.
_PROBE = """
import importlib, json, os, sys
for module, prefixes in json.loads(sys.argv[1]):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            before = set(sys.modules)
            importlib.import_module(module)
            new = set(sys.modules) - before
            report = {"loaded": sorted(m for m in new
                                       if any(m == p or m.startswith(p + ".") for p in prefixes))}
        except BaseException as exc:
            report = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    print(json.dumps([module, json.loads(data or b'{"error": "the probe died"}')]))
"""


def _check_runtime(root: Path, targets: list[tuple[str, tuple[str, ...]]]
                   ) -> dict[str, list[str]]:
    """module -> findings, for every (module, forbidden prefixes) target."""
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(targets)], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(root)})
    if done.returncode != 0:
        return {"(runtime probe)": [f"failed: {done.stderr.strip()[-500:]}"]}
    findings: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        module, report = json.loads(line)
        if "error" in report:
            findings[module] = [f"{module} cannot be imported: {report['error']}"]
        elif report["loaded"]:
            # Third-party and standard packages first, then mesoslite's subpackages.
            tops = {".".join(m.split(".")[:2]) if m.startswith("mesoslite.") else m.split(".")[0]
                    for m in report["loaded"]}
            shown = sorted(tops, key=lambda m: (m.startswith("mesoslite."), m))
            findings[module] = [f"importing {module} loads {', '.join(shown)}"]
    return findings


def run(root: Path, verbose: bool) -> int:
    """Run every check under ``root``; print the findings; 1 when any is not pending.

    Broken checks are printed in full; pending ones as one line each (in full with
    ``verbose``).
    """
    findings: dict[tuple[str, str], list[str]] = {}
    config = _contracts(root)
    contracted = tuple(name for contract in PURE_CONTRACTS
                       for name in _contract_modules(config, contract, "source_modules"))
    for rel, name, tree in _modules(root):
        scan = _Scan(name)
        scan.visit(tree)
        for check, found in (("spawn", _check_spawn(rel, scan)),
                             ("tornado-web", _check_web(rel, scan)),
                             ("pure", _check_pure(rel, name, tree, scan, contracted)),
                             ("long-functions", _check_length(rel, tree))):
            if found:
                findings[(check, rel)] = found
    if layered := _check_layered(root, config):
        findings[("layered", ".importlinter")] = layered
    for module, found in _check_runtime(root, _runtime_targets(root, config)).items():
        findings[("runtime", module)] = found
    failed: list[str] = []
    for key, lines in sorted(findings.items(), key=lambda item: (item[0] in PENDING, item[0])):
        pending = PENDING.get(key)
        if pending is None:
            failed.append(f"{key[0]} {key[1]}")
            print(f"[{key[0]}] BROKEN: {key[1]}")
        else:
            print(f"[{key[0]}] pending: {key[1]} ({pending})")
        if pending is None or verbose:
            for line in lines:
                print(f"    {line}")
    for key in sorted(set(PENDING) - set(findings)):
        print(f"[{key[0]}] {key[1]}: pending entry no longer needed; delete it from PENDING")
    if failed:
        print(f"contracts.py: {len(failed)} broken: {'; '.join(failed)}")
        return 1
    print("contracts.py: spawn, tornado-web, pure, runtime, layered and long-functions kept; "
          f"{len(findings)} pending")
    return 0


def main() -> int:
    """Parse the command line and run the checks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout to check (default: this script's)")
    parser.add_argument("--verbose", action="store_true",
                        help="show what each pending entry still breaks")
    args = parser.parse_args()
    return run(args.root.resolve(), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
