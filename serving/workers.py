"""Several server processes over one loaded artifact: a supervisor and its forked workers.

One Python process answers on one core, since a request's work mostly holds
the GIL. ``recsys serve --workers N`` runs N worker processes instead:

- **One load, shared memory.** The supervisor loads the artifact, then forks
  the workers, which share its pages copy-on-write (the mapped indexes are
  shared anyway, as file pages). Objects are frozen out of the cyclic garbage
  collector before each fork (:func:`gc.freeze`), so that a worker's
  collections do not write to, and so copy, the pages of the shared objects.
- **Connections dealt evenly.** The supervisor accepts every connection and
  passes it (``SCM_RIGHTS``) to the worker with the fewest open connections;
  the worker reports each close. Workers sharing one listening socket do not
  balance: the first to wake takes every waiting connection (measured with
  uvicorn's own ``workers`` mode: 15 of 16 keep-alive connections, then all
  16, on one process; docs/serving.md, fourth round).
- **Reload by re-forking.** ``POST /v1/admin/reload`` reaching a worker is
  passed to the supervisor, which loads and checks the new artifact beside the
  old (a broken one is refused and nothing changes), forks a new set of
  workers over it, deals new connections to them only, and retires the old
  set. A retiring worker finishes its requests in flight on the old artifact,
  answers each connection's next request with ``Connection: close`` (so the
  client reconnects, to a new worker), and exits once its connections are gone
  (idle ones are closed after :data:`RETIRE_GRACE_S`). The load runs in the
  supervisor, not beside a serving event loop, so it takes no GIL from
  requests.
- **Platform state** (takedowns, erasures) needs nothing more: every worker
  checks the SQLite store's generation on every request
  (:meth:`serving.holder.EngineHolder.current`).

``recsys serve --workers N`` runs prometheus_client in multiprocess mode: any
worker's ``/metrics`` sums the request counters and latency histograms of all
workers, live or exited, and reports the supervisor's reload counts
(:class:`serving.metrics.ServiceMetrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recsys.errors import ArtifactError

logger = logging.getLogger(__name__)

#: Seconds a retiring worker waits for its connections to close before closing them.
RETIRE_GRACE_S = 10.0
#: Seconds the supervisor waits for workers to exit on shutdown.
STOP_GRACE_S = 30.0


@dataclass
class RestartBackoff:
    """When to replace a worker that died: at once, unless workers keep dying young.

    A worker that served at least ``stable_s`` seconds is replaced at once. One
    that died sooner (a fault at start-up, a bad host) counts as a failure in a
    row, and its replacement waits ``base_s``, then twice as long after each
    further young death, up to ``max_s``: a persistent fault then costs a fork
    every ``max_s`` seconds instead of a fork loop.
    """

    base_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 10.0
    failures: int = 0

    def delay(self, uptime_s: float) -> float:
        """Seconds to wait before replacing a worker that lived ``uptime_s`` seconds."""
        if uptime_s >= self.stable_s:
            self.failures = 0
            return 0.0
        self.failures += 1
        return min(self.max_s, self.base_s * 2.0 ** (self.failures - 1))


# Messages on a worker's connection channel (SOCK_SEQPACKET: one message per send).
_CONNECTION = b"c"  # supervisor -> worker, with the connection's descriptor
_RETIRE = b"q"  # supervisor -> worker
_CLOSED = b"x"  # worker -> supervisor: one dealt connection closed
# On its request channel: a worker's request and the supervisor's JSON answer.
_RELOAD = b"r"


class WorkerLink:
    """A worker's side of its two channels to the supervisor.

    Attributes
    ----------
    draining
        Set when the worker is retired: responses then carry
        ``Connection: close``.
    on_retire
        Called once when the worker is retired (set by the app: it lets go of
        the retiring artifact's mapped index pages).
    """

    def __init__(self, conn: socket.socket, rpc: socket.socket) -> None:
        self.conn = conn
        self.rpc = rpc
        self.draining = False
        self.on_retire: Callable[[], Any] | None = None
        self._rpc_lock = threading.Lock()

    def closed(self) -> None:
        """Tell the supervisor that one dealt connection closed."""
        with contextlib.suppress(OSError):
            self.conn.send(_CLOSED)

    def reload(self) -> tuple[bool, str]:
        """Ask the supervisor to reload; blocks until it has (call from a worker thread).

        Returns
        -------
        (changed, model_version)
            The version every new request is served from.

        Raises
        ------
        ArtifactError
            The supervisor refused the newest artifact (broken); the current one
            keeps serving.
        """
        with self._rpc_lock:
            self.rpc.send(_RELOAD)
            answer = json.loads(
                self.rpc.recv(65536) or b'{"ok": false, "error": "supervisor gone"}'
            )
        if not answer["ok"]:
            raise ArtifactError(answer["error"])
        return bool(answer["changed"]), str(answer["version"])


@dataclass
class _Worker:
    pid: int
    conn: socket.socket
    rpc: socket.socket
    open: int = 0
    retiring: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Forks workers over the loaded state and deals them connections.

    Parameters
    ----------
    host, port
        Where to listen.
    workers
        Number of worker processes (>= 1).
    make_app
        Called in each new worker, right after the fork, with its
        :class:`WorkerLink`: returns the ASGI application it serves (built
        over what the supervisor holds at the time of the fork).
    reload
        Called in a supervisor thread on a worker's reload request: returns
        ``(changed, version)`` (new workers are forked when ``changed``) or
        raises an exception whose message is the refusal. ``None``: reloads
        are refused.
    watch, watch_interval_s
        Every ``watch_interval_s`` seconds (0: never), ``watch()`` says
        whether a newer artifact is there to reload.
    on_exit
        Called with a worker's pid once it has exited (metrics clean-up).
    before_fork
        Called before a set of workers is forked, after a garbage collection:
        hand freed memory back (:func:`serving.holder.release_memory`) now,
        not once the workers share the pages.
    uvicorn_options
        Extra :class:`uvicorn.Config` options of the workers.
    backoff
        When a worker that died is replaced (:class:`RestartBackoff`). While
        no worker is running, new connections wait in the listening socket's
        backlog instead of being accepted and closed.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        workers: int,
        make_app: Callable[[WorkerLink], Any],
        reload: Callable[[], tuple[bool, str]] | None = None,
        watch: Callable[[], bool] | None = None,
        watch_interval_s: float = 0.0,
        on_exit: Callable[[int], None] | None = None,
        before_fork: Callable[[], None] | None = None,
        uvicorn_options: dict[str, Any] | None = None,
        backoff: RestartBackoff | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.host, self.port, self.n_workers = host, port, workers
        self.make_app = make_app
        self._reload_fn = reload
        self._watch = watch if watch_interval_s > 0 else None
        self._watch_interval_s = watch_interval_s
        self._on_exit = on_exit
        self._before_fork = before_fork
        self.uvicorn_options = dict(uvicorn_options or {})
        self.backoff = backoff if backoff is not None else RestartBackoff()
        self.workers: dict[int, _Worker] = {}
        self._restarts: list[float] = []  # when each pending replacement is due (monotonic)
        self._listening = False
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._reload_thread: threading.Thread | None = None
        self._reload_result: dict[str, Any] | None = None
        self._reload_waiting: list[_Worker] = []
        self.listener: socket.socket | None = None

    # ------------------------------------------------------------------ supervisor
    def run(self) -> None:
        """Listen, fork the workers, deal connections until SIGINT or SIGTERM."""
        self.listener = socket.create_server((self.host, self.port), backlog=2048)
        self.listener.setblocking(False)
        logger.info(
            "supervisor %d listening on http://%s:%d with %d workers",
            os.getpid(),
            self.host,
            self.listener.getsockname()[1],
            self.n_workers,
        )
        self._wake_r.setblocking(False)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        next_watch = time.monotonic() + self._watch_interval_s
        # No automatic collections here: a collection writes to every tracked object,
        # and each page written is copied away from the workers that share it (a
        # reload's memory grew by about 75 MiB per reload with them, measured on the
        # 1M artifact). The supervisor collects once before each fork instead.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._fork_set(sel)
            while not self._stop:
                if self._watch is not None and time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + self._watch_interval_s
                    try:
                        if self._reload_thread is None and self._watch():
                            self._start_reload()
                    except Exception:  # noqa: BLE001 - watching must go on
                        logger.exception("artifact watch failed")
                self._restart_due(sel)
                self._sync_listener(sel)
                timeout = 0.5
                if self._restarts:
                    timeout = min(timeout, max(0.0, min(self._restarts) - time.monotonic()))
                for key, _ in sel.select(timeout=timeout):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                        self._finish_reload(sel)
                    else:
                        kind, worker = key.data
                        self._from_worker(sel, kind, worker)
                self._reap(sel)
        finally:
            self._shutdown(sel)
            for s, h in previous.items():
                signal.signal(s, h)
            if gc_was_enabled:
                gc.enable()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"s")

    def _fork_set(self, sel: selectors.BaseSelector, n: int | None = None) -> None:
        """Fork ``n`` workers (default: a full set) over the current state."""
        if n is None:
            self._restarts = []  # a full set replaces the dead ones too
        gc.collect()
        if self._before_fork is not None:
            self._before_fork()
        # Out of the cyclic collector's reach, in the children: their collections then
        # leave the shared objects' pages alone (they would be copied on write).
        gc.freeze()
        try:
            for _ in range(self.n_workers if n is None else n):
                self._fork_one(sel)
        finally:
            gc.unfreeze()  # the supervisor's next collection may free an old artifact

    def _fork_one(self, sel: selectors.BaseSelector) -> None:
        conn_p, conn_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        rpc_p, rpc_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                conn_p.close()
                rpc_p.close()
                self._in_child(sel)
                code = _worker_main(WorkerLink(conn_c, rpc_c), self.make_app, self.uvicorn_options)
            except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor
                logger.exception("worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        conn_c.close()
        rpc_c.close()
        conn_p.setblocking(False)
        worker = _Worker(pid, conn_p, rpc_p)
        self.workers[pid] = worker
        sel.register(conn_p, selectors.EVENT_READ, ("conn", worker))
        sel.register(rpc_p, selectors.EVENT_READ, ("rpc", worker))
        logger.info("worker %d started", pid)

    def _in_child(self, sel: selectors.BaseSelector) -> None:
        """What a new worker lets go of: the supervisor's sockets and signal handlers.

        It also turns automatic garbage collection back on, which the supervisor
        runs without: the objects inherited from the supervisor are frozen
        (:meth:`_fork_set`), so the worker's collections leave their shared pages
        alone and only visit what the worker made itself.
        """
        gc.enable()
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_DFL)
        sel.close()
        assert self.listener is not None
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()
        for w in self.workers.values():
            w.conn.close()
            w.rpc.close()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            active = [w for w in self.workers.values() if not w.retiring]
            try:
                if not active:
                    raise OSError("no worker")
                worker = min(active, key=lambda w: w.open)
                socket.send_fds(worker.conn, [_CONNECTION], [client.fileno()])
                worker.open += 1
            except OSError:
                logger.exception("could not hand a connection to a worker")
            finally:
                client.close()  # the worker holds its own descriptor now

    def _from_worker(self, sel: selectors.BaseSelector, kind: str, worker: _Worker) -> None:
        sock = worker.conn if kind == "conn" else worker.rpc
        try:
            msg = sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            msg = b""
        if not msg:  # the worker is gone; _reap collects it
            sel.unregister(sock)
            return
        if kind == "conn" and msg == _CLOSED:
            worker.open = max(0, worker.open - 1)
        elif kind == "rpc" and msg == _RELOAD:
            self._reload_waiting.append(worker)
            self._start_reload()

    # ------------------------------------------------------------------ reload
    def _start_reload(self) -> None:
        if self._reload_thread is not None:
            return  # the running reload answers every request made meanwhile
        if self._reload_fn is None:
            self._reload_result = {"ok": False, "error": "this server does not reload"}
            self._wake_w.send(b"r")
            return

        def run() -> None:
            assert self._reload_fn is not None
            try:
                changed, version = self._reload_fn()
                self._reload_result = {"ok": True, "changed": changed, "version": version}
            except Exception as exc:  # noqa: BLE001 - the refusal goes back to the caller
                self._reload_result = {"ok": False, "error": str(exc)}
            with contextlib.suppress(OSError):
                self._wake_w.send(b"r")

        self._reload_thread = threading.Thread(target=run, name="reload", daemon=True)
        self._reload_thread.start()

    def _finish_reload(self, sel: selectors.BaseSelector) -> None:
        result = self._reload_result
        if result is None:
            return
        if self._reload_thread is not None:
            self._reload_thread.join()  # no other thread of ours while forking
            self._reload_thread = None
        self._reload_result = None
        if result.get("ok") and result.get("changed"):
            old = [w for w in self.workers.values() if not w.retiring]
            t0 = time.perf_counter()
            self._fork_set(sel)
            for w in old:
                w.retiring = True
                with contextlib.suppress(OSError):
                    w.conn.send(_RETIRE)
            logger.info(
                "serving %s from %d new workers (forked in %.2fs); %d retiring",
                result["version"],
                self.n_workers,
                time.perf_counter() - t0,
                len(old),
            )
        answer = json.dumps(result).encode()
        for w in self._reload_waiting:
            with contextlib.suppress(OSError):
                w.rpc.send(answer)
        self._reload_waiting = []

    # ------------------------------------------------------------------ exits
    def _reap(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            for sock in (worker.conn, worker.rpc):
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(sock)
                sock.close()
            if worker in self._reload_waiting:
                self._reload_waiting.remove(worker)
            if self._on_exit is not None:
                try:
                    self._on_exit(pid)
                except Exception:  # noqa: BLE001 - never stops the supervisor
                    logger.exception("after worker %d exited", pid)
            if worker.retiring or self._stop:
                logger.info("worker %d exited (%s)", pid, _exit_text(status))
            else:
                uptime = time.monotonic() - worker.started
                delay = self.backoff.delay(uptime)
                logger.error(
                    "worker %d died (%s) after %.1fs; starting another in %.1fs",
                    pid,
                    _exit_text(status),
                    uptime,
                    delay,
                )
                self._restarts.append(time.monotonic() + delay)

    def _restart_due(self, sel: selectors.BaseSelector) -> None:
        """Replace the dead workers whose back-off has run out."""
        if not self._restarts or self._stop:
            return
        now = time.monotonic()
        due = [t for t in self._restarts if t <= now]
        if due:
            self._restarts = [t for t in self._restarts if t > now]
            # Never more than a full set (a reload may have forked one meanwhile).
            active = sum(not w.retiring for w in self.workers.values())
            n = min(len(due), self.n_workers - active)
            if n > 0:
                self._fork_set(sel, n)

    def _sync_listener(self, sel: selectors.BaseSelector) -> None:
        """Accept connections only while a worker can take them (else they wait queued)."""
        assert self.listener is not None
        serving = any(not w.retiring for w in self.workers.values())
        if serving and not self._listening:
            sel.register(self.listener, selectors.EVENT_READ, "accept")
        elif not serving and self._listening:
            sel.unregister(self.listener)
        self._listening = serving

    def _shutdown(self, sel: selectors.BaseSelector) -> None:
        self._stop = True
        if self.listener is not None:
            self.listener.close()
        for w in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.workers and time.monotonic() < deadline:
            self._reap(sel)
            time.sleep(0.05)
        for w in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGKILL)
        while self.workers:
            self._reap(sel)
            time.sleep(0.01)
        logger.info("supervisor stopped")


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


# ---------------------------------------------------------------------- worker side
def _worker_main(link: WorkerLink, make_app: Callable[[WorkerLink], Any], options: dict) -> int:
    import uvicorn

    app = make_app(link)
    config = uvicorn.Config(app, log_config=None, access_log=False, **options)
    server = uvicorn.Server(config)
    asyncio.run(_serve(server, link))
    return 0


async def _serve(server: Any, link: WorkerLink) -> None:
    """uvicorn's serve, with connections coming from the supervisor instead of a listener."""
    config = server.config
    if not config.loaded:
        config.load()
    server.lifespan = config.lifespan_class(config)
    loop = asyncio.get_running_loop()

    def protocol() -> asyncio.Protocol:
        proto = config.http_protocol_class(
            config=config, server_state=server.server_state, app_state=server.lifespan.state
        )
        lost = proto.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            lost(exc)
            link.closed()

        proto.connection_lost = connection_lost  # type: ignore[method-assign]
        return proto

    async def retire() -> None:
        link.draining = True
        if link.on_retire is not None:
            # The new workers are mapping the new artifact's indexes meanwhile; the
            # old mapping's pages would otherwise stay counted until this one exits.
            link.on_retire()
        deadline = loop.time() + RETIRE_GRACE_S
        while server.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        server.should_exit = True

    async def adopt(sock: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(protocol, sock)
        except OSError:
            sock.close()
            link.closed()

    def on_message() -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(link.conn, 64, 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            msg, fds = b"", []
        for fd in fds:
            loop.create_task(adopt(socket.socket(fileno=fd)))
        if msg == _RETIRE and not link.draining:
            loop.create_task(retire())
        elif not msg and not fds:  # the supervisor is gone
            server.should_exit = True
            loop.remove_reader(link.conn.fileno())

    with server.capture_signals():
        await server.startup(sockets=[])
        if server.should_exit:
            return
        link.conn.setblocking(False)
        loop.add_reader(link.conn.fileno(), on_message)
        await server.main_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(link.conn.fileno())
        await server.shutdown(sockets=[])
