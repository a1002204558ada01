"""The fetcher: a task's URIs into its sandbox before the task starts (Mesos fetcher semantics).

Owns: :class:`FetchLimits` (the ``--fetcher_*`` flags), :class:`FetchError` (its
message names the URI, masked, and the cause), :class:`FetcherCache` (the agent's
download cache: keyed by user and URI, least recently used evicted first, bounded
by ``--fetcher_cache_size``, emptied when the agent starts), :class:`Fetcher`
(blocking: fetches one task's URIs in order) and :class:`FetchTasks` (the shell:
performs the core's ``FetchUris`` effects on a small thread pool and answers the
core with ``AgentState.fetch_finished``).

Per URI (``CommandInfo.uris``): ``http://``/``https://`` (redirects followed up to
``--fetcher_max_redirects``, ``user:password@`` sent as HTTP Basic and never
logged, an Authorization header never carried across a redirect) or ``file://``
and absolute paths (regular files only; when the agent runs as root the file must
be readable by the task's user, as if Mesos's fetcher ran as that user).  The file
lands at ``<sandbox>/<output_file or the URI's last path segment>``; ``executable``
makes it 0755 (else 0644); ``extract`` unpacks a ``.tar*``/``.zip`` into the sandbox
(:mod:`mesoslite.agent.archives`: nothing may escape); ``cache`` goes through the
cache.  After the URIs, :class:`FetchTasks` resolves the task's secret variables from
``--secret_store_dir`` (:mod:`mesoslite.agent.secrets`).  Limits: nothing received
for ``--fetcher_stall_timeout`` fails the URI, so do more than ``--fetcher_max_size``
bytes or ``--fetcher_timeout`` seconds.  What
was fetched is handed to the task's user when the agent runs as root.  Each step
is logged (masked) and appended to the sandbox's ``stderr``, as Mesos does.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import pwd
import shutil
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import attrs

from mesoslite.agent.archives import ArchiveError, extract_archive
from mesoslite.agent.config import AgentConfig
from mesoslite.agent.effects import CancelFetch, Effect, FetchUris
from mesoslite.agent.secrets import SecretError, resolve_secrets
from mesoslite.protocol import CommandURI
from mesoslite.protocol.uris import check_uri, fetch_name, is_archive, mask_uri, split_uri

log = logging.getLogger("mesoslite.agent.fetcher")

_CHUNK = 1 << 16
#: A progress line is logged every this many bytes of one download.
_PROGRESS_EVERY = 64 << 20


class FetchError(RuntimeError):
    """A URI could not be fetched; the message names the (masked) URI and why."""


@attrs.frozen
class FetchLimits:
    """The fetcher's limits, from the agent's ``--fetcher_*`` flags."""

    stall_timeout: float = 60.0
    timeout: float = 1800.0
    max_size: int = 4 << 30
    max_redirects: int = 5

    @classmethod
    def from_config(cls, config: AgentConfig) -> FetchLimits:
        """The limits an agent's flags set."""
        return cls(stall_timeout=config.fetcher_stall_timeout, timeout=config.fetcher_timeout,
                   max_size=config.fetcher_max_size, max_redirects=config.fetcher_max_redirects)


# ------------------------------------------------------------------ the cache


class FetcherCache:
    """Downloads kept for reuse, keyed by (user, URI); LRU-evicted to stay within capacity.

    Thread-safe.  The directory is emptied on construction (as Mesos's agent does on
    start: nothing from a previous run is trusted).
    """

    def __init__(self, directory: str, capacity: int) -> None:
        """Empty (or create) ``directory`` and start with nothing cached."""
        self.directory = directory
        self.capacity = capacity
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._entries: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.used = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @staticmethod
    def key(user: str, uri: str) -> str:
        """The cache key of ``uri`` fetched for ``user``."""
        return hashlib.sha256(f"{user}\x00{uri}".encode()).hexdigest()

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, key)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold ``key`` so that concurrent tasks download one URI once."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def open(self, key: str, *, count: bool = True) -> IO[bytes] | None:
        """The cached file of ``key``, open for reading (and now most recently used);
        ``count`` counts the lookup as a hit or a miss."""
        with self._lock:
            handle = None
            if key in self._entries:
                try:
                    handle = open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
                except OSError:
                    self.used -= self._entries.pop(key)
            if handle is not None:
                self._entries.move_to_end(key)
            if count:
                self.hits += handle is not None
                self.misses += handle is None
            return handle

    def partial_path(self, key: str) -> str:
        """Where a download for ``key`` is written before :meth:`admit`."""
        return self._path(f".{key}.part")

    def admit(self, key: str, size: int) -> bool:
        """Keep the finished download of ``key`` (False, and it is left in place, when it
        is larger than the whole cache); least recently used entries make room."""
        with self._lock:
            if size > self.capacity:
                return False
            while self._entries and self.used + size > self.capacity:
                old, old_size = self._entries.popitem(last=False)
                self.used -= old_size
                self.evictions += 1
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(old))
                log.info("Fetcher cache: evicted %s (%d bytes)", old[:12], old_size)
            os.replace(self.partial_path(key), self._path(key))
            self._entries[key] = size
            self.used += size
            return True

    def keys(self) -> list[str]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)


# ------------------------------------------------------------------ downloads


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows at most ``limit`` redirects, to http(s) URLs only."""

    max_redirections = 51  # the flag's own bound (50) decides, not urllib's default 10

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def http_error_302(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                       headers: Any) -> Any:
        """Follow one more redirect, unless ``limit`` were already followed."""
        visited = getattr(req, "redirect_dict", {})
        if sum(visited.values()) >= self.limit:
            raise FetchError(f"more than {self.limit} redirects (--fetcher_max_redirects)")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        """The next request, refusing a redirect to anything but http or https."""
        if not newurl.lower().startswith(("http://", "https://")):
            raise FetchError(f"redirected to a non-HTTP location {mask_uri(newurl)[:200]!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _http_request(value: str) -> urllib.request.Request:
    """The request for an http(s) URI; ``user:password@`` becomes HTTP Basic credentials."""
    _scheme, authority, _path = split_uri(value)
    userinfo, at, host = authority.rpartition("@")
    url = value
    if at:
        url = value.replace(f"{authority}", host, 1)
    request = urllib.request.Request(url, headers={"User-Agent": "mesoslite-fetcher"})
    if at:
        token = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def _readable_by(path: str, account: pwd.struct_passwd | None) -> bool:
    """True when ``account`` may read ``path`` (every directory above it searchable)."""
    if account is None or account.pw_uid == 0:
        return True
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))

    def allowed(st: os.stat_result, bit: int) -> bool:
        if st.st_uid == account.pw_uid:
            return bool((st.st_mode >> 6) & bit)
        if st.st_gid in groups:
            return bool((st.st_mode >> 3) & bit)
        return bool(st.st_mode & bit)

    parts = path.split("/")
    for i in range(1, len(parts) - 1):
        directory = "/".join(parts[: i + 1]) or "/"
        if not allowed(os.stat(directory), 1):
            return False
    return allowed(os.stat(path), 4)


class _Copy:
    """One URI's bytes from a source to a file, within the limits."""

    def __init__(self, shown: str, limits: FetchLimits, abort: threading.Event) -> None:
        self.shown = shown
        self.limits = limits
        self.abort = abort
        self.started = time.monotonic()

    def run(self, src: IO[bytes], dst: IO[bytes], expected: int | None) -> int:
        """Copy until the end; FetchError when a limit is hit or the end comes early."""
        total = 0
        next_report = _PROGRESS_EVERY
        read = getattr(src, "read1", src.read)  # what has arrived, without waiting for more
        while True:
            if self.abort.is_set():
                raise FetchError("the fetch was cancelled (the task was killed or the agent "
                                 "is stopping)")
            if time.monotonic() - self.started > self.limits.timeout:
                raise FetchError(f"took longer than {self.limits.timeout:g}s "
                                 f"(--fetcher_timeout) after {total} bytes")
            try:
                chunk = read(_CHUNK)
            except TimeoutError:
                raise FetchError(f"stalled: nothing received for "
                                 f"{self.limits.stall_timeout:g}s (--fetcher_stall_timeout) "
                                 f"after {total} bytes") from None
            if not chunk:
                break
            total += len(chunk)
            if total > self.limits.max_size:
                raise FetchError(f"larger than {self.limits.max_size} bytes "
                                 f"(--fetcher_max_size)")
            dst.write(chunk)
            if total >= next_report:
                next_report += _PROGRESS_EVERY
                log.info("Fetching %s: %d MB so far", self.shown, total >> 20)
        if expected is not None and total < expected:
            raise FetchError(f"the connection ended after {total} of {expected} bytes")
        return total


def _download(uri: str, target: str, limits: FetchLimits, abort: threading.Event,
              account: pwd.struct_passwd | None) -> int:
    """Fetch ``uri`` into the file ``target`` (created); returns its size."""
    scheme = split_uri(uri)[0]
    copy = _Copy(mask_uri(uri), limits, abort)
    if scheme == "file":
        return _copy_file(split_uri(uri)[2], target, copy, account)
    opener = urllib.request.build_opener(_Redirects(limits.max_redirects))
    try:
        response = opener.open(_http_request(uri), timeout=limits.stall_timeout)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise FetchError(f"more than {limits.max_redirects} redirects "
                             f"(--fetcher_max_redirects)") from None
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise FetchError(f"could not connect: {exc.reason}") from None
    except TimeoutError:
        raise FetchError(f"no answer within {limits.stall_timeout:g}s "
                         f"(--fetcher_stall_timeout)") from None
    except (OSError, ValueError) as exc:
        raise FetchError(f"request failed: {exc}") from None
    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        if expected is not None and expected > limits.max_size:
            raise FetchError(f"is {expected} bytes, more than {limits.max_size} "
                             f"(--fetcher_max_size)")
        with open(target, "wb") as dst:
            try:
                return copy.run(response, dst, expected)
            except (OSError, ValueError) as exc:  # http.client.IncompleteRead is a ValueError
                if isinstance(exc, FetchError):
                    raise
                raise FetchError(f"download failed: {exc}") from None


def _copy_file(path: str, target: str, copy: _Copy, account: pwd.struct_passwd | None) -> int:
    """Copy a local regular file (opened without blocking on a FIFO) into ``target``."""
    path = urllib.parse.unquote(path)
    try:
        real = os.path.realpath(path)
        if not _readable_by(real, account):
            raise FetchError(f"{path!r} is not readable by user "
                             f"{account.pw_name if account else '?'}")
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FetchError(f"no such file {path!r} on this agent") from None
    except PermissionError:
        raise FetchError(f"permission denied reading {path!r}") from None
    except OSError as exc:
        raise FetchError(f"cannot open {path!r}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as src:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FetchError(f"{path!r} is not a regular file")
        os.set_blocking(fd, True)
        with open(target, "wb") as dst:
            return copy.run(src, dst, info.st_size)


# ------------------------------------------------------------------ one task's URIs


def _account(user: str) -> pwd.struct_passwd | None:
    """The task user's account when the agent runs as root (None: nothing to switch to)."""
    if not user or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise FetchError(f"user {user!r} does not exist on this agent") from None


def _give(root: str, account: pwd.struct_passwd | None) -> None:
    """Hand everything in the sandbox ``root`` (not ``root`` itself) to the task's user."""
    if account is None or account.pw_uid == 0:
        return
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), account.pw_uid, account.pw_gid)


class Fetcher:
    """Fetches one task's URIs into its sandbox (blocking: run it on a worker thread)."""

    def __init__(self, limits: FetchLimits, cache_dir: str, cache_size: int) -> None:
        """No I/O yet: the cache directory is emptied on the first cached fetch."""
        self.limits = limits
        self._cache_dir = cache_dir
        self.cache_size = cache_size
        self._cache: FetcherCache | None = None
        self._cache_lock = threading.Lock()

    @property
    def cached(self) -> FetcherCache | None:
        """The cache if one was made (no I/O)."""
        return self._cache

    @property
    def cache(self) -> FetcherCache:
        """The download cache (created, emptying its directory, on first use)."""
        with self._cache_lock:
            if self._cache is None:
                self._cache = FetcherCache(self._cache_dir, self.cache_size)
            return self._cache

    def fetch_all(self, uris: Iterable[CommandURI], sandbox: str, user: str,
                  abort: threading.Event) -> None:
        """Fetch every URI in order; FetchError (naming the URI) at the first failure."""
        uris = tuple(uris)
        os.makedirs(sandbox, exist_ok=True)
        try:
            account = _account(user)
        except FetchError as exc:
            first = mask_uri(uris[0].value) if uris else ""
            _note(sandbox, f"Failed to fetch URI '{first}': {exc}")
            raise FetchError(f"Failed to fetch URI '{first}': {exc}") from None
        for uri in uris:
            shown = mask_uri(uri.value)
            started = time.monotonic()
            _note(sandbox, f"Fetching URI '{shown}'")
            try:
                size = self._fetch_one(uri, sandbox, account, abort)
            except (FetchError, ArchiveError, OSError) as exc:
                cause = str(exc) if not isinstance(exc, OSError) else (
                    f"{exc.strerror or exc} ({exc.filename or ''})")
                message = f"Failed to fetch URI '{shown}': {cause}"
                _note(sandbox, message)
                log.warning("%s (sandbox %s)", message, sandbox)
                raise FetchError(message) from None
            took = time.monotonic() - started
            _note(sandbox, f"Fetched '{shown}' ({size} bytes) in {took:.2f}s")
            log.info("Fetched %s into %s (%d bytes, %.2fs)", shown, sandbox, size, took)
        _give(os.path.realpath(sandbox), account)

    def _fetch_one(self, uri: CommandURI, sandbox: str, account: pwd.struct_passwd | None,
                   abort: threading.Event) -> int:
        problem = check_uri(uri)
        if problem is not None:
            raise FetchError(f"{problem[0]}: {problem[1]}")
        root = os.path.realpath(sandbox)
        name = fetch_name(uri)
        target = os.path.join(root, name)
        parent = os.path.realpath(os.path.dirname(target))
        if parent != root and not parent.startswith(root + "/"):
            raise FetchError(f"output file {name!r} would be written out of the sandbox")
        os.makedirs(parent, mode=0o755, exist_ok=True)
        if os.path.islink(target):
            os.unlink(target)
        size = self._into(uri, target, account, abort)
        os.chmod(target, 0o755 if uri.executable else 0o644)
        if uri.extract and is_archive(name):
            extract_archive(target, root, self.limits.max_size)
        return size

    def _into(self, uri: CommandURI, target: str, account: pwd.struct_passwd | None,
              abort: threading.Event) -> int:
        """Download ``uri`` to ``target``, through the cache when it asks for it."""
        if not uri.cache:
            return _download(uri.value, target, self.limits, abort, account)
        cache = self.cache
        key = FetcherCache.key(account.pw_name if account else "", uri.value)
        with cache.locked(key):
            cached = cache.open(key)
            if cached is None:
                partial = cache.partial_path(key)
                try:
                    size = _download(uri.value, partial, self.limits, abort, account)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(partial)
                    raise
                if not cache.admit(key, size):
                    log.info("Fetcher cache: %s (%d bytes) is larger than the cache; "
                             "fetched directly", mask_uri(uri.value), size)
                    shutil.move(partial, target)  # the cache may be on another file system
                    return size
                cached = cache.open(key, count=False)
            if cached is None:
                raise FetchError("the cached copy vanished")
            with cached, open(target, "wb") as dst:
                shutil.copyfileobj(cached, dst, _CHUNK)
                return dst.tell()


def _note(sandbox: str, line: str) -> None:
    """Append a fetcher line to the sandbox's stderr (as Mesos's fetcher does)."""
    with contextlib.suppress(OSError), open(os.path.join(sandbox, "stderr"), "a") as out:
        out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} fetcher: {line}\n")


# ------------------------------------------------------------------ the shell


FetchFinished = Callable[[str, str, str, str, dict[str, str]], list[Effect]]


class FetchTasks:
    """Performs ``FetchUris`` effects off the event loop; reports each result to the core."""

    def __init__(self, config: AgentConfig, finished: FetchFinished,
                 perform: Callable[[Iterable[Effect]], None], work_dir: str = "") -> None:
        """``finished(framework_id, executor_id, task_id, error, secrets)`` is the core's
        answer."""
        self._secret_store = config.secret_store_dir
        cache_dir = config.fetcher_cache_dir or os.path.join(
            os.path.abspath(work_dir or config.work_dir), "fetch")
        self.fetcher = Fetcher(FetchLimits.from_config(config), cache_dir,
                               config.fetcher_cache_size)
        self._finished = finished
        self._perform = perform
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="fetcher")
        self._aborts: dict[tuple[str, str], threading.Event] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        self.succeeded = 0
        self.failed = 0

    def metrics(self) -> dict[str, float]:
        """Mesos's ``containerizer/fetcher/*`` metrics."""
        cache = self.fetcher.cached
        return {
            "containerizer/fetcher/cache_size_total_bytes": float(self.fetcher.cache_size),
            "containerizer/fetcher/cache_size_used_bytes": float(cache.used if cache else 0),
            "containerizer/fetcher/task_fetches_succeeded": float(self.succeeded),
            "containerizer/fetcher/task_fetches_failed": float(self.failed),
        }

    def fetch(self, effect: FetchUris) -> None:
        """Start fetching a task's URIs (the core hears back through ``finished``)."""
        abort = self._aborts[(effect.framework_id, effect.task_id)] = threading.Event()
        job = asyncio.get_running_loop().create_task(self._run(effect, abort))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    def cancel(self, effect: CancelFetch) -> None:
        """Abort a task's fetch (it was killed): the download stops at its next chunk."""
        abort = self._aborts.get((effect.framework_id, effect.task_id))
        if abort is not None:
            log.info("Cancelling the fetch of task %s of framework %s", effect.task_id,
                     effect.framework_id)
            abort.set()

    def _prepare(self, effect: FetchUris, abort: threading.Event) -> dict[str, str]:
        """Blocking: the URIs into the sandbox, then the secrets from the store."""
        if effect.uris:
            self.fetcher.fetch_all(effect.uris, effect.sandbox, effect.user, abort)
        return resolve_secrets(self._secret_store, effect.secrets)

    async def _run(self, effect: FetchUris, abort: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        error = ""
        values: dict[str, str] = {}
        try:
            values = await loop.run_in_executor(self._pool, self._prepare, effect, abort)
        except FetchError as exc:
            error = str(exc)
        except SecretError as exc:
            error = str(exc)
            log.warning("Task %s of framework %s: %s", effect.task_id, effect.framework_id,
                        error)
        except Exception as exc:  # the task must hear of it either way
            log.exception("Preparing task %s failed", effect.task_id)
            error = f"Failed to prepare the task: {type(exc).__name__}"
        finally:
            self._aborts.pop((effect.framework_id, effect.task_id), None)
        if effect.uris:
            self.succeeded += not error
            self.failed += bool(error)
        self._perform(self._finished(effect.framework_id, effect.executor_id,
                                     effect.task_id, error, values))

    def close(self) -> None:
        """Stop: abort downloads in flight and drop the queued ones."""
        for abort in self._aborts.values():
            abort.set()
        for job in list(self._jobs):
            job.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
