#!/usr/bin/env python3
"""Checks the user documentation against itself and against the code (`make docs`).

Fails, naming the file and line, on:
- a relative link or `#anchor` (in the guide, the READMEs, ARCHITECTURE.md, CONTRIBUTING.md)
  that points to no file or heading; a guide page linking outside the book, or to a page
  SUMMARY.md does not list. An mdBook `{{#include}}` is checked where it is included.
- code (fenced blocks, inline code) naming what the code does not have: a setting such as
  `REVERT_POLICY` (known from the string literals of crates/ and tests/ and the variables of
  the Makefile and infra/deploy.sh), a `make` target (the Makefile's), an `sgwarden` command
  or flag (the help snapshots in tests/snapshots/, which tests/tests/cli.rs keeps equal to
  the binary's --help), a template parameter in `--parameter-overrides` (infra/*.yaml).
- a gap: an error type the code reports that Troubleshooting does not explain, an alarm of
  infra/*.yaml or a metric the functions write that Running it does not name, a command
  without a help snapshot in the CLI chapter, a variable a template sets that no code reads.

Every known name is read from the source, never from a list kept here. Python 3.11 stdlib.
Usage: check.py [ROOT] (default: the repository this file is in).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs/guide/src"
TOP_FILES = ["README.md", "ARCHITECTURE.md", "CONTRIBUTING.md", "tests/README.md",
             "events/README.md", "infra/README.md"]
SHELL_LANGS = {"sh", "bash", "shell", "console"}
# Names under these prefixes are the SDK's or AWS's, not sgwarden's settings.
FOREIGN_PREFIXES = {"AWS"}

problems: list[str] = []


def problem(path: Path, line: int, message: str) -> None:
    problems.append(f"{path.relative_to(ROOT)}:{line}: {message}")


# ---------------------------------------------------------------- what the code defines

def rust_sources(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.rs")) if "target" not in p.parts]


SETTING = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b(?![_*\[])")


def known_settings() -> tuple[set[str], set[str]]:
    """Every upper-case name the code uses as a string (environment variables, clap's `env`),
    and the prefixes of those crates/ uses, which mark a name as sgwarden's."""
    literal = re.compile(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"')
    crates = {m for p in rust_sources("crates") for m in literal.findall(p.read_text())}
    tests = {m for p in rust_sources("tests") for m in literal.findall(p.read_text())}
    shell_vars = set()
    for name in ("Makefile", "infra/deploy.sh"):
        text = (ROOT / name).read_text()
        shell_vars |= set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*[:?+]?=", text, re.M))
        shell_vars |= set(re.findall(r"\$[({]([A-Z][A-Z0-9_]*)", text))
    prefixes = {n.split("_")[0] for n in crates} - FOREIGN_PREFIXES
    return crates | tests | shell_vars, prefixes


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def cli_help() -> dict[str, str]:
    """The help text of `sgwarden` ("") and of each command, from the snapshots."""
    snapshots = ROOT / "tests/snapshots"
    helps = {"": (snapshots / "help-sgwarden.txt").read_text()}
    commands = re.search(r"^Commands:\n((?:  \S.*\n)+)", helps[""], re.M)
    for line in (commands.group(1).splitlines() if commands else []):
        name = line.split()[0]
        if name == "help":
            continue
        path = snapshots / f"help-{name}.txt"
        if path.exists():
            helps[name] = path.read_text()
        else:
            problem(snapshots / "help-sgwarden.txt", 1,
                    f"command `{name}` has no help snapshot tests/snapshots/help-{name}.txt")
            helps[name] = ""
    return helps


def function_bodies(name: str) -> list[str]:
    """The bodies of every `fn <name>(` in crates/, by brace matching."""
    bodies = []
    for path in rust_sources("crates"):
        text = path.read_text()
        for m in re.finditer(rf"\bfn {name}\b[^{{;]*\{{", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            bodies.append(text[m.end():i])
    return bodies


def error_types() -> set[str]:
    """Every error type the code can report: the names of `core::ErrorType`, the one place
    they are written (`crates/core/src/error.rs`)."""
    text = (ROOT / "crates/core/src/error.rs").read_text()
    return set(re.findall(r'ErrorType::\w+ => "([A-Z][A-Za-z]+)"', text))


def metrics() -> set[str]:
    names = {m for body in function_bodies("counts") for m in re.findall(r'\("([A-Z][A-Za-z]+)"', body)}
    lambda_lib = (ROOT / "crates/lambda/src/lib.rs").read_text()
    return names | set(re.findall(r'push\(\("([A-Z][A-Za-z]+)"', lambda_lib))


def template_parameters() -> set[str]:
    names = set()
    for path in sorted((ROOT / "infra").glob("*.yaml")):
        section = re.search(r"^Parameters:\n((?:[ #].*\n|\n)+)", path.read_text(), re.M)
        if section:
            names |= set(re.findall(r"^  (\w+):", section.group(1), re.M))
    return names


def template_parts() -> tuple[set[str], dict[str, tuple[Path, int]]]:
    alarms, variables = set(), {}
    for path in sorted((ROOT / "infra").glob("*.yaml")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^  (\w+):$", line)
            if m and i + 1 < len(lines) and lines[i + 1].strip() == "Type: AWS::CloudWatch::Alarm":
                alarms.add(m.group(1))
            if line.strip() == "Variables:":
                indent = len(line) - len(line.lstrip())
                for j in range(i + 1, len(lines)):
                    inner = lines[j]
                    if inner.strip() and len(inner) - len(inner.lstrip()) <= indent:
                        break
                    v = re.match(r"^\s+([A-Z][A-Z0-9_]+):", inner)
                    if v:
                        variables.setdefault(v.group(1), (path, j + 1))
    return alarms, variables


# ---------------------------------------------------------------- reading markdown

INCLUDE = re.compile(r"\{\{#include\s+([^}\s:]+)[^}]*\}\}")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w-]*)")


def expand(path: Path) -> str:
    """The page as mdBook renders it: includes replaced by the files they name."""
    text = path.read_text()

    def include(m: re.Match) -> str:
        target = (path.parent / m.group(1)).resolve()
        if not target.exists():
            problem(path, text.count("\n", 0, m.start()) + 1, f"include of a missing file: {m.group(1)}")
            return ""
        return target.read_text().rstrip("\n")

    return INCLUDE.sub(include, text)


class Page:
    """A markdown text split into prose (code blanked out, line numbers kept) and code."""

    def __init__(self, text: str):
        self.text = text
        prose_lines, self.blocks = [], []  # blocks: (first line, language, lines)
        fence, lang, start, body = None, "", 0, []
        for n, line in enumerate(text.splitlines(), 1):
            m = FENCE.match(line)
            if fence is None and m:
                fence, lang, start, body = m.group(1)[0] * 3, m.group(2).lower(), n, []
                prose_lines.append("")
            elif fence is not None and line.strip().startswith(fence):
                self.blocks.append((start + 1, lang, body))
                fence = None
                prose_lines.append("")
            elif fence is not None:
                body.append(line)
                prose_lines.append("")
            else:
                prose_lines.append(line)
        prose = "\n".join(prose_lines)
        self.spans = [(prose.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split()))
                      for m in re.finditer(r"`([^`]+)`", prose)]
        self.prose = re.sub(r"`[^`]+`", lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)

    def headings(self) -> set[str]:
        ids, seen = set(), {}
        # Read from the text with code spans kept: their words are part of the id.
        for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", self._text_outside_fences(), re.M):
            title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).replace("`", "")
            slug = "".join(c.lower() if c.isalnum() or c in "_-" else "-" if c.isspace() else ""
                           for c in title)
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            ids.add(slug if count == 0 else f"{slug}-{count}")
        return ids

    def _text_outside_fences(self) -> str:
        lines = self.text.splitlines()
        for first, _, body in self.blocks:
            for i in range(first - 2, first + len(body)):
                lines[i] = ""
        return "\n".join(lines)

    def links(self):
        for m in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", self.prose):
            yield self.prose.count("\n", 0, m.start()) + 1, m.group(1)


_pages: dict[Path, Page] = {}


def page(path: Path) -> Page:
    if path not in _pages:
        _pages[path] = Page(expand(path) if GUIDE in path.parents else path.read_text())
    return _pages[path]


# ---------------------------------------------------------------- the checks

def check_links(path: Path, listed: set[Path]) -> int:
    count = 0
    in_book = GUIDE in path.parents
    for line, target in page(path).links():
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        count += 1
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problem(path, line, f"link to a missing file: {target}")
            continue
        if in_book and GUIDE not in dest.parents:
            problem(path, line, f"link leaves the book (the built guide would not have it): {target}")
            continue
        if in_book and dest.suffix == ".md" and dest not in listed:
            problem(path, line, f"link to a page SUMMARY.md does not list: {target}")
        if anchor and dest.suffix == ".md" and anchor not in page(dest).headings():
            problem(path, line, f"link to a missing heading: {target}")
    return count


def command_words(code: str):
    """`make X` and `sgwarden X --flags` invocations in one shell command line."""
    code = re.sub(r"(^|\s)#.*$", "", code)
    for segment in re.split(r"\|\||&&|[|;(]|\$\(", code):
        words = segment.split()
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]  # VAR=value before the command
        if len(words) >= 2 and words[0] in ("make", "sgwarden"):
            yield words[0], words[1], [w.split("=")[0] for w in words[2:] if w.startswith("--")]


def check_code(path: Path, settings: set[str], prefixes: set[str], targets: set[str],
               helps: dict[str, str], parameters: set[str]) -> int:
    count = 0
    p = page(path)

    def names(line: int, code: str) -> None:
        nonlocal count
        for name in SETTING.findall(code):
            if name.split("_")[0] in prefixes and name not in settings:
                count += 1
                problem(path, line, f"`{name}` is not a setting the code reads")

    def command(line: int, code: str) -> None:
        nonlocal count
        overrides = code.partition("--parameter-overrides")[2]
        for name in re.findall(r"(?:^|\s)([A-Z][A-Za-z0-9]+)=", overrides) + \
                re.findall(r"ParameterKey=(\w+)", code):
            count += 1
            if name not in parameters:
                problem(path, line, f"`{name}` is not a parameter of any template in infra/")
        for tool, word, flags in command_words(code):
            count += 1
            if tool == "make":
                if word not in targets:
                    problem(path, line, f"`make {word}`: the Makefile has no target `{word}`")
            elif word.startswith("--"):
                if word not in helps[""]:
                    problem(path, line, f"`sgwarden {word}`: not an option of sgwarden")
            elif not re.match(r"^[a-z][a-z-]*$", word):
                continue  # a placeholder such as <command>
            elif word not in helps:
                problem(path, line, f"`sgwarden {word}`: sgwarden has no command `{word}`")
            else:
                for flag in flags:
                    if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[word]):
                        problem(path, line, f"`sgwarden {word} {flag}`: no such option")

    for first, lang, body in p.blocks:
        joined, start = "", first
        for n, line in enumerate(body, first):
            names(n, line)
            if lang in SHELL_LANGS:
                if not joined:
                    start = n
                joined += line.rstrip("\\") + " "
                if not line.rstrip().endswith("\\"):
                    command(start, joined)
                    joined = ""
    for line, span in p.spans:
        names(line, span)
        if span.startswith(("make ", "sgwarden ")):
            command(line, span)
    return count


def check_guide_coverage(listed: set[Path]) -> None:
    summary = GUIDE / "SUMMARY.md"
    for md in sorted(GUIDE.rglob("*.md")):
        if md != summary and md not in listed:
            problem(md, 1, "page not listed in SUMMARY.md: the built guide would not have it")
    troubleshooting = page(GUIDE / "troubleshooting.md")
    explained = troubleshooting.headings() | {s for _, s in troubleshooting.spans}
    for kind in sorted(error_types()):
        if kind.lower() not in explained and kind not in explained:
            problem(GUIDE / "troubleshooting.md", 1, f"error type `{kind}` is reported by the code but not explained here")
    running = page(GUIDE / "running.md")
    named = {s for _, s in running.spans}
    alarms, variables = template_parts()
    for alarm in sorted(alarms):
        if alarm not in named:
            problem(GUIDE / "running.md", 1, f"alarm `{alarm}` of infra/ is not described here")
    for metric in sorted(metrics()):
        if metric not in named:
            problem(GUIDE / "running.md", 1, f"metric `{metric}` is written by the code but not named here")
    cli = (GUIDE / "cli.md").read_text()
    for name in cli_help():
        snapshot = f"tests/snapshots/help-{name or 'sgwarden'}.txt"
        if snapshot not in cli:
            problem(GUIDE / "cli.md", 1, f"the reference does not include {snapshot}")
    settings, _ = known_settings()
    for variable, (path, line) in sorted(variables.items()):
        if variable not in settings:
            problem(path, line, f"the template sets `{variable}`, which no code reads")


def main() -> int:
    settings, prefixes = known_settings()
    targets, helps, parameters = make_targets(), cli_help(), template_parameters()
    summary = GUIDE / "SUMMARY.md"
    listed = {(GUIDE / t).resolve() for t in re.findall(r"\]\(([^)]+\.md)\)", summary.read_text())}
    files = [ROOT / f for f in TOP_FILES if (ROOT / f).exists()] + sorted(GUIDE.rglob("*.md"))
    links = names = 0
    for path in files:
        links += check_links(path, listed)
        names += check_code(path, settings, prefixes, targets, helps, parameters)
    check_guide_coverage(listed)
    for line in problems:
        print(line)
    if problems:
        print(f"docs check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"docs check: {len(files)} files, {links} links, {names} names of settings, commands and parameters: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
