"""The docs never send anyone to a command or flag that does not exist: every
``synap-cli ...`` and ``synap-server ...`` invocation in README.md and docs/*.md (code
blocks and inline code) is checked against the real click parsers, subcommand by
subcommand and option by option, and ``synap-cli <word> --help`` really runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from synap.cli import main as cli_main
from synap.server_cli import main as server_main

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROGRAMS: dict[str, click.Command] = {"synap-cli": cli_main, "synap-server": server_main}
_NOT_SHELL = {"json", "yaml", "python", "toml", "text"}
_SEPARATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>&1", "<", "\\"}
_INLINE = re.compile(r"`((?:synap-cli|synap-server)(?: [^`]*)?)`")
_STARTS = re.compile(r"(?:^|&&|;|\||\$\(|^(?:\w+=\S+ )+)\s*((?:synap-cli|synap-server)\b.*)")


def invocations(path: Path) -> list[tuple[int, str]]:
    """(line number, command text) of each synap-cli / synap-server invocation."""
    found: list[tuple[int, str]] = []
    lines = path.read_text().splitlines()
    fence: str | None = None
    pending = ""
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else (stripped[3:].strip() or "plain")
            pending = ""
            continue
        if fence is None:
            found += [(number, m.group(1)) for m in _INLINE.finditer(line)]
            continue
        if fence in _NOT_SHELL:
            continue
        text = pending + stripped.removeprefix("$ ")
        if text.endswith("\\"):  # a continued command line
            pending = text[:-1] + " "
            continue
        pending = ""
        text = re.sub(r"(^|\s)#.*$", "", text)  # shell comment
        match = _STARTS.search(text)
        if match:
            found.append((number, match.group(1)))
    return found


def check(text: str) -> list[str]:
    """Problems with one invocation (empty if every word and flag exists)."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    program = tokens[0]
    command = PROGRAMS[program]
    path = [program]
    problems: list[str] = []
    i = 1
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in _SEPARATORS or token.startswith((">", "2>")):
            break
        if token.startswith("-") and token != "-":
            name = token.split("=", 1)[0]
            option = next((p for p in command.params if name in p.opts), None)
            if option is None and name in ("--help", "-h"):
                continue
            if option is None:
                problems.append(f"{' '.join(path)} has no option {name}")
                continue
            if isinstance(option, click.Option) and not option.is_flag and "=" not in token:
                i += 1  # its value
            continue
        if isinstance(command, click.Group):
            if token.isupper() or token.startswith(("<", "[")) or token in ("...", "…"):
                break  # a placeholder such as COMMAND
            sub = command.commands.get(token)
            if sub is None:
                problems.append(f"{' '.join(path)} has no subcommand {token!r}")
                break
            command = sub
            path.append(token)
    return problems


def all_invocations() -> list[tuple[str, str]]:
    return [
        (f"{path.relative_to(ROOT)}:{number}", text)
        for path in DOCS
        for number, text in invocations(path)
    ]


def test_the_docs_mention_synap_cli_and_synap_server() -> None:
    found = [text for _, text in all_invocations()]
    assert any(t.startswith("synap-cli replication status") for t in found)
    assert any(t.startswith("synap-server --role") for t in found)
    assert any("--version" in t for t in found)  # README: both take --version


def test_every_documented_invocation_exists() -> None:
    problems = [
        f"{where}: `{text}`: {problem}"
        for where, text in all_invocations()
        for problem in check(text)
    ]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_does_not_exist() -> None:
    assert check("synap-cli nosuch --node x")
    assert check("synap-cli replication nosuch")
    assert check("synap-cli promote --bogus")
    assert check("synap-server --rol master")
    assert not check("synap-cli --api-key K replication status --node a --node b")
    assert not check("synap-server --role replica --master-address 127.0.0.1:15501 &")


def _documented_subcommands() -> set[str]:
    words = set()
    for _, text in all_invocations():
        tokens = text.split()
        if tokens[0] != "synap-cli":
            continue
        i = 1
        while i < len(tokens) and tokens[i].startswith("-"):
            i += 2 if tokens[i] == "--api-key" else 1
        if i < len(tokens) and tokens[i] in cli_main.commands:
            words.add(tokens[i])
    return words


@pytest.mark.parametrize("word", sorted(_documented_subcommands()))
def test_documented_subcommand_help_runs(word: str) -> None:
    result = CliRunner().invoke(cli_main, [word, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
