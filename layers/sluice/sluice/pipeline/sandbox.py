"""Parse untrusted files in a child process: limited in memory, CPU, file size and wall-clock time,
and started with an empty environment, so a parser exploit finds no AWS credentials (not in its
environment, not in /proc/self/environ, not in a forked copy of the parent's memory).

Lambda has no /dev/shm, so there are no multiprocessing pools: one long-lived worker is started
with ``subprocess`` and fed documents over a pipe (length-prefixed frames). Each document gets its
own CPU budget (the worker lowers its soft RLIMIT_CPU before parsing) and its own wall-clock budget
(the parent stops waiting and kills the worker). A worker that dies, runs out of time or memory is
replaced before the next document. Only extraction runs here; cleaning and chunking are Sluice's
own code and run in the parent.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import resource
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import IO, Any

from sluice.errors import QuarantineError, Reason, TransientError
from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract import ParseLimits

MiB = 1024 * 1024
MAX_REPLY_BYTES = 256 * MiB
_FRAME = struct.Struct(">I")
_BOOT = "import sys, json; sys.path[:] = json.loads(sys.argv[1]); from sluice.pipeline.sandbox import serve; serve()"


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    memory_mb: int = 1024  # address space of the parsing process
    cpu_seconds: int = 60  # CPU time per document
    wall_seconds: float = 90.0  # wall-clock time per document, when the invocation has that much left
    file_mb: int = 64  # the largest file the parser may write
    min_wall_seconds: float = 2.0  # less time left than this: retry the document in a fresh invocation


# -- the parent's side ---------------------------------------------------------------------------------


class Sandbox:
    """Extraction in a worker process. Safe to reuse across documents; not thread-safe.

    ``target`` names the function the worker calls (``module:function``, taking data, kind and
    limits); tests point it at misbehaving functions to prove the limits hold."""

    def __init__(self, limits: SandboxLimits | None = None, target: str = "sluice.pipeline.extract:extract") -> None:
        self.limits = limits or SandboxLimits()
        self.target = target
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self.started = 0  # workers started, for the curious (tests, metrics)

    def __call__(
        self, data: bytes, kind: Kind, limits: ParseLimits, deadline: float | None = None
    ) -> ExtractedDocument:
        wall = self.limits.wall_seconds
        truncated = False
        if deadline is not None and deadline - time.monotonic() < wall:
            wall, truncated = deadline - time.monotonic(), True
            if wall < self.limits.min_wall_seconds:
                raise TransientError(
                    f"only {max(wall, 0):.1f} s left in this invocation; parse the document in the next"
                )
        process = self._worker()
        header = json.dumps(
            {
                "kind": kind.value,
                "limits": asdict(limits),
                "cpu_seconds": self.limits.cpu_seconds,
                "target": self.target,
            }
        ).encode()
        try:
            assert process.stdin is not None
            process.stdin.write(_FRAME.pack(len(header)) + header + _FRAME.pack(len(data)))
            process.stdin.write(data)
            process.stdin.flush()
            reply = self._read_reply(process, time.monotonic() + wall)
        except _WallTimeout:
            self.close()
            if truncated:
                raise TransientError("the invocation ran out of time while parsing; SQS will retry") from None
            raise QuarantineError(Reason.TIMEOUT_WALL, f"parsing took longer than {wall:.0f} s", kind.value) from None
        except (BrokenPipeError, _WorkerDied):
            raise self._death(kind) from None
        if not reply.get("ok"):
            if reply.get("reason") in (Reason.MEMORY_LIMIT.value, Reason.NESTING_TOO_DEEP.value):
                self.close()  # the worker survived, but its heap may not have: start afresh
            raise QuarantineError(Reason(reply["reason"]), reply["detail"], reply.get("kind") or kind.value)
        return _decode(reply["document"])

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _worker(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self.close()
        limits = self.limits
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker; closed in close()

        def confine() -> None:  # runs in the child between fork and exec
            memory = limits.memory_mb * MiB
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * MiB, limits.file_mb * MiB))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
            # The worker lowers the soft CPU limit per document; the hard one ends a runaway.
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, 24 * 3600))

        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},  # no AWS credentials, nothing else
            preexec_fn=confine,  # noqa: PLW1509 - setrlimit must run in the child before exec
            close_fds=True,
        )
        self.started += 1
        return self._process

    def _read_reply(self, process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
        assert process.stdout is not None
        size = _FRAME.unpack(_read_exactly(process.stdout, _FRAME.size, deadline))[0]
        if size > MAX_REPLY_BYTES:
            raise _WorkerDied
        reply: dict[str, Any] = json.loads(_read_exactly(process.stdout, size, deadline))
        return reply

    def _death(self, kind: Kind) -> QuarantineError:
        process = self._process
        code = process.wait() if process is not None else None
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, self._stderr.tell() - 400))
            tail = self._stderr.read().decode("utf-8", "replace").strip().replace("\n", " | ")
        self.close()
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return QuarantineError(
                Reason.TIMEOUT_CPU, f"parsing used more than {self.limits.cpu_seconds} s of CPU", kind.value
            )
        if code == -signal.SIGXFSZ:
            return QuarantineError(
                Reason.DECOMPRESSION_OR_SIZE_LIMIT, "the parser tried to write too large a file", kind.value
            )
        detail = f"the parser process died ({_describe(code)})" + (f": {tail[-300:]}" if tail else "")
        return QuarantineError(Reason.WORKER_CRASH, detail, kind.value)


class _WallTimeout(Exception):
    pass


class _WorkerDied(Exception):
    pass


def _describe(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit status {code}"


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    out = bytearray()
    fd = stream.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(out) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise _WallTimeout
            piece = os.read(fd, min(size - len(out), 1 << 20))
            if not piece:
                raise _WorkerDied
            out += piece
    return bytes(out)


def _encode(doc: ExtractedDocument) -> dict[str, Any]:
    return {
        "kind": doc.kind.value,
        "title": doc.title,
        "blocks": [[b.kind.value, b.text, b.level, b.page, b.context] for b in doc.blocks],
        "page_count": doc.page_count,
        "parser": doc.parser,
        "notes": doc.notes,
    }


def _decode(data: dict[str, Any]) -> ExtractedDocument:
    blocks = [Block(BlockKind(k), text, level, page, context) for k, text, level, page, context in data["blocks"]]
    return ExtractedDocument(
        Kind(data["kind"]), data["title"], blocks, data["page_count"], data["parser"], data["notes"]
    )


# -- the worker's side ---------------------------------------------------------------------------------


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _handle(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    module, name = header["target"].split(":")
    function = getattr(importlib.import_module(module), name)
    kind = Kind(header["kind"])
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (min(int(_cpu_used()) + int(header["cpu_seconds"]) + 1, hard), hard))
    try:
        return {"ok": True, "document": _encode(function(data, kind, ParseLimits(**header["limits"])))}
    except QuarantineError as exc:
        return {"ok": False, "reason": exc.reason.value, "detail": exc.detail, "kind": exc.kind or kind.value}
    except MemoryError:
        return {"ok": False, "reason": Reason.MEMORY_LIMIT.value, "detail": "parsing needed more memory than allowed"}
    except RecursionError:
        return {"ok": False, "reason": Reason.NESTING_TOO_DEEP.value, "detail": "the document nests too deeply"}
    except OSError as exc:
        if exc.errno == errno.EFBIG:  # RLIMIT_FSIZE (Python ignores SIGXFSZ, so the write fails instead)
            return {
                "ok": False,
                "reason": Reason.DECOMPRESSION_OR_SIZE_LIMIT.value,
                "detail": "the parser tried to write too large a file",
            }
        return {"ok": False, "reason": Reason.MALFORMED.value, "detail": f"{type(exc).__name__}: {exc}"[:500]}
    except Exception as exc:  # noqa: BLE001 - reported as what it is: the parser failed on these bytes
        return {"ok": False, "reason": Reason.MALFORMED.value, "detail": f"{type(exc).__name__}: {exc}"[:500]}


def serve() -> None:
    """The worker's loop: one framed request in, one framed reply out, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the frames
    while True:
        head = stdin.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return
        header = json.loads(stdin.read(_FRAME.unpack(head)[0]))
        data = stdin.read(_FRAME.unpack(stdin.read(_FRAME.size))[0])
        reply = json.dumps(_handle(header, data)).encode()  # ASCII: lone surrogates travel escaped
        stdout.write(_FRAME.pack(len(reply)) + reply)
        stdout.flush()
