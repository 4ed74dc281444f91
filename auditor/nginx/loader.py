"""Reading nginx configuration sources: a file with its ``include``s, or ``nginx -T`` output.

``include`` paths are globbed and, when relative, taken from the main
configuration's directory (nginx's conf prefix). A configuration that is part
of an input (a bundle, a sosreport) is read with that input's ``root``: its
includes resolve inside the root (``/etc/nginx/x`` is ``<root>/etc/nginx/x``),
a file they name that lies outside it (``..``, a symbolic link) is not read but
reported, and only regular files are opened (a FIFO never hangs). In an ``nginx -T`` dump the
``# configuration file PATH:`` sections stand for the files, so a dump taken on
another host resolves its includes without touching this one. The result is
one flat tuple of :class:`Directive` in nginx's reading order, each with the
file and line it was written at.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from dataclasses import dataclass, field

from auditor.models import Location
from auditor.nginx import grammar
from auditor.nginx.model import Directive, NginxConfigError
from auditor.paths import open_regular, resolve_in

MAX_INCLUDE_DEPTH = 32
MAX_FILE_BYTES = 64 << 20
_SECTION = re.compile(r"^# configuration file (.+):[ \t]*$", re.M)
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_dump(text: str) -> bool:
    """True when ``text`` looks like ``nginx -T`` output."""
    return _SECTION.search(text) is not None


def split_dump(text: str, origin: str) -> list[tuple[str, str]]:
    """``nginx -T`` output -> [(file path, file text)], main configuration first."""
    marks = list(_SECTION.finditer(text))
    if not marks:
        raise NginxConfigError("no '# configuration file PATH:' section", Location(origin, 1))
    sections: list[tuple[str, str]] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[m.end() + 1 : end] if m.end() < len(text) else ""
        # nginx -T ends each file with one extra blank line; it is harmless to keep.
        sections.append((m.group(1).strip(), body))
    return sections


@dataclass
class _Reader:
    """Flattens files into directives, resolving includes from disk or from dump sections."""

    prefix: str
    sections: dict[str, str] | None = None  # nginx -T: path -> text
    root: str | None = None  # an input's root: includes resolve inside it, never on this host
    directives: list[Directive] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def read_file(
        self, path: str, text: str, context: tuple[str, ...], parent: int, depth: int
    ) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise NginxConfigError("includes nested too deeply (a cycle?)", Location(path, 1))
        if path not in self.files:
            self.files.append(path)
        try:
            nodes = grammar.parse(text)
        except grammar.GrammarError as exc:
            raise NginxConfigError(str(exc), Location(path, exc.line)) from None
        self._walk(path, nodes, context, parent, depth)

    def _walk(
        self,
        path: str,
        nodes: tuple[grammar.Node, ...],
        context: tuple[str, ...],
        parent: int,
        depth: int,
    ) -> None:
        for node in nodes:
            loc = Location(path, node.line)
            is_block = node.block is not None
            d = Directive(node.name, node.args, loc, context, is_block, node.raw, parent)
            self.directives.append(d)
            if node.name == "include" and node.block is None:
                self._include(d, depth)
            elif node.block:
                label = " ".join((node.name, *node.args))
                self._walk(path, node.block, (*context, label), len(self.directives) - 1, depth)

    def _include(self, d: Directive, depth: int) -> None:
        if len(d.args) != 1:
            raise NginxConfigError("include takes exactly one argument", d.location)
        pattern = d.args[0]
        if self.root is not None and self.sections is None and os.path.isabs(pattern):
            pattern = os.path.normpath(os.path.join(self.root, pattern.lstrip("/")))
        elif not os.path.isabs(pattern):
            pattern = os.path.normpath(os.path.join(self.prefix, pattern))
        for path, text in self._resolve(pattern, d):
            self.read_file(path, text, d.context, d.parent, depth + 1)

    def _resolve(self, pattern: str, d: Directive) -> list[tuple[str, str]]:
        has_glob = _GLOB_CHARS.search(pattern) is not None
        if self.sections is not None:
            if has_glob:
                found = [
                    (p, t) for p, t in self.sections.items() if fnmatch.fnmatchcase(p, pattern)
                ]
            else:
                found = [(pattern, self.sections[pattern])] if pattern in self.sections else []
            if not found and not has_glob:
                self.problems.append(f"{d.location}: include {pattern}: not in the dump")
            return found
        if self.root is not None:
            return self._resolve_inside(self.root, pattern, has_glob, d)
        paths = sorted(glob.glob(pattern)) if has_glob else [pattern]
        out: list[tuple[str, str]] = []
        for path in paths:
            try:
                out.append((path, read_text(path)))
            except OSError as exc:
                self.problems.append(f"{d.location}: include {path}: {exc.strerror or exc}")
        return out

    def _resolve_inside(
        self, root: str, pattern: str, has_glob: bool, d: Directive
    ) -> list[tuple[str, str]]:
        """An input's include: its folder resolved inside ``root`` first, then globbed there."""
        folder, name = os.path.split(pattern)
        where = resolve_in(root, folder) if not _GLOB_CHARS.search(folder) else None
        if where is None:
            self.problems.append(f"{d.location}: include {pattern}: not resolved inside the input")
            return []
        paths = sorted(glob.glob(os.path.join(glob.escape(where), name))) if has_glob else [
            os.path.join(where, name)
        ]
        out: list[tuple[str, str]] = []
        for path in paths:
            real = resolve_in(root, path)
            if real is None:
                self.problems.append(f"{d.location}: include {path}: symbolic link loop")
                continue
            try:
                out.append((path, read_text(real, regular=True)))
            except OSError as exc:
                self.problems.append(f"{d.location}: include {path}: {exc.strerror or exc}")
        return out


def read_text(path: str, regular: bool = False) -> str:
    """A configuration file's text (invalid UTF-8 replaced); OSError when unreadable.

    ``regular``: anything but a regular file is refused without blocking."""
    with open(open_regular(path) if regular else path, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise NginxConfigError("file larger than 64 MiB: not a configuration", Location(path, 1))
    return data.decode("utf-8", "replace")


Source = tuple[tuple[Directive, ...], tuple[str, ...], tuple[str, ...], bool]


def read_source(text: str, origin: str, root: str | None = None) -> Source:
    """(directives, files read, problems, is_dump) for a file's or a dump's text.

    ``root``: the input the configuration belongs to; includes stay inside it."""
    if is_dump(text):
        sections = split_dump(text, origin)
        main_path, main_text = sections[0]
        reader = _Reader(os.path.dirname(main_path), dict(sections))
        reader.read_file(main_path, main_text, (), -1, 0)
        unused = [p for p, _ in sections if p not in reader.files]
        reader.problems.extend(f"{origin}: section {p} is not included anywhere" for p in unused)
        return tuple(reader.directives), tuple(reader.files), tuple(reader.problems), True
    real_root = os.path.realpath(root) if root is not None else None
    reader = _Reader(os.path.dirname(origin) or ".", root=real_root)
    reader.read_file(origin, text, (), -1, 0)
    return tuple(reader.directives), tuple(reader.files), tuple(reader.problems), False
