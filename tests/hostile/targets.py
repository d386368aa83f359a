"""Misbehaving "parsers" the sandbox tests run in the worker in place of sluice.pipeline.extract:extract.
Each stands for what an exploited or pathological parser does."""

from __future__ import annotations

import os
import tempfile
import time

from sluice.model import Block, BlockKind, ExtractedDocument, Kind
from sluice.pipeline.extract import ParseLimits


def _doc(text: str) -> ExtractedDocument:
    return ExtractedDocument(Kind.TEXT, None, [Block(BlockKind.PARAGRAPH, text)], parser="target")


def burn_cpu(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    while True:  # an infinite loop in a content-stream parser
        pass


def sleep(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    time.sleep(3600)  # blocked, using no CPU: only the wall clock catches it
    return _doc("never")


def allocate(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    hoard = []
    while True:  # a decompression bomb inflating into memory
        hoard.append(bytearray(64 * 1024 * 1024))


def crash(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    os.abort()  # a native library crashing


def write_file(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    with tempfile.TemporaryFile() as f:
        while True:  # filling /tmp
            f.write(b"x" * (1 << 20))


def environment(data: bytes, kind: Kind, limits: ParseLimits) -> ExtractedDocument:
    """What an XXE or code-execution bug could read: the environment and /proc/self/environ."""
    with open("/proc/self/environ", "rb") as f:
        proc = f.read().decode("utf-8", "replace").replace("\x00", "\n")
    env = "\n".join(f"{k}={v}" for k, v in os.environ.items())
    return _doc(f"{env}\n---\n{proc}")
