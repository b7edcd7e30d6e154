"""Every ``openfas …`` command in a ```bash block of README.md and docs/*.md parses against the real command line.

Commands are read the way a shell splits them (line continuations, comments, ``;`` / ``&&`` / pipes, environment
prefixes such as ``OMP_NUM_THREADS=1 openfas …``, launchers such as ``torchrun … $(which openfas) train …`` or
``python -m openfas.cli``) and parsed with click's own parser for the ``openfas`` app, so a renamed command or
option, a stale ``-c`` config name, an extra argument or a mistyped number fails here. ``<placeholders>``, ``…``
and ``$variables`` stand for values the reader fills in: they are not type-checked, and a ``-c`` or override that
holds one is not loaded.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from openfas.cli import app
from openfas.config import ConfigError, list_packaged_configs, load_config

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell"}
PLACEHOLDER = "PLACEHOLDER"
# words a shell reads before the command itself: keywords, and launchers that run the command that follows
SHELL_KEYWORDS = {"do", "then", "else", "time", "!", "{", "(", "exec", "env", "nohup"}
OPERATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&"}
REDIRECTIONS = {">", ">>", "<", ">&", "&>", "<&", ">|", "<<", "<<<", "&>>"}


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line of the command's first line
    args: tuple[str, ...]  # the words after ``openfas``


def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced code block in a shell language, fences indented or not."""
    blocks: list[tuple[int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("```"):
            language = stripped[3:].strip().lower()
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if language in SHELL_LANGUAGES:
                blocks.append((i + 2, lines[i + 1:j]))
            i = j + 1
        else:
            i += 1
    return blocks


def logical_lines(first: int, lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) with ``\\``-continued lines joined onto the first."""
    out: list[tuple[int, str]] = []
    pending, start = "", first
    for n, line in enumerate(lines, first):
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def _simple_commands(line: str) -> list[list[str]]:
    """Split one shell line into its simple commands (words), comments and redirections dropped."""
    line = re.sub(r"\$\(\s*which\s+openfas\s*\)", "openfas", line)
    line = re.sub(r"\$\([^()]*\)", "$SUBST", line)  # any other command substitution is a value the reader gets
    line = re.sub(r"<[A-Za-z][^<>\n]*>", PLACEHOLDER, line)  # <run folder>, <attack>; not `< file` redirections
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in OPERATORS:
            commands.append([])
        elif token in REDIRECTIONS:
            if commands[-1] and commands[-1][-1].isdigit():  # 2>&1, 2> log
                commands[-1].pop()
            skip_next = True
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def openfas_args(words: list[str]) -> tuple[str, ...] | None:
    """The arguments of ``openfas`` in one simple command, or None when it runs something else."""
    k = 0
    while k < len(words) and (words[k] in SHELL_KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[k])):
        k += 1  # keywords and environment assignments before the command
    for i in range(k, len(words)):
        if words[i] == "openfas" or words[i].endswith("/openfas"):
            return tuple(words[i + 1:])
        if words[i] == "openfas.cli" and i > 0 and words[i - 1] == "-m":
            return tuple(words[i + 1:])
    return None


def doc_commands(path: Path) -> list[DocCommand]:
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    found = []
    for first, lines in bash_blocks(path.read_text()):
        for lineno, line in logical_lines(first, lines):
            for words in _simple_commands(line):
                args = openfas_args(words)
                if args is not None:
                    found.append(DocCommand(f"{name}:{lineno}", args))
    return found


def _is_placeholder(value: object) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(v, str) and (PLACEHOLDER in v or "…" in v or "..." in v or "$" in v) for v in values)


def _message(err: Exception) -> str:
    return err.format_message() if hasattr(err, "format_message") else str(err)


_ROOT_COMMAND = typer.main.get_command(app)
_PACKAGED = set(list_packaged_configs())


def problems(args: tuple[str, ...]) -> list[str]:
    """What does not parse in ``openfas ARGS``: unknown (sub)commands or options, extra arguments, values of the
    wrong type, ``-c`` configs that are not packaged, overrides the config schema refuses. Empty when it parses."""
    cmd, name, parent = _ROOT_COMMAND, "openfas", None
    rest = list(args)
    while True:  # click's own option parser of each (sub-)command: option names and arity, positional arguments
        ctx = cmd.context_class(cmd, info_name=name, parent=parent)
        try:
            opts, rest, _ = cmd.make_parser(ctx).parse_args(args=list(rest))
        except Exception as err:  # click's NoSuchOption, BadOptionUsage, …: the message says which
            return [f"{ctx.command_path}: {_message(err)}"]
        commands = getattr(cmd, "commands", None)
        if commands is None:
            break
        if not rest:  # `openfas --help`, `openfas data --help`
            return []
        if rest[0] not in commands:
            return [f"{ctx.command_path}: no sub-command {rest[0]!r} (it has: {', '.join(sorted(commands))})"]
        cmd, name, parent, rest = commands[rest[0]], rest[0], ctx, rest[1:]
    found = []
    rest = [r for r in rest if not re.fullmatch(r"\$(\w+|\{\w+\})", r)]  # `$f` may hold options (--flip)
    if rest:
        found.append(f"{ctx.command_path}: unexpected extra argument(s) {rest}")
    for param in cmd.params:  # each given value through its parameter's own conversion (int, float, Path, …)
        raw = opts.get(param.name)
        if raw is None or _is_placeholder(raw):
            continue
        try:
            param.process_value(ctx, raw)
        except Exception as err:
            found.append(f"{ctx.command_path} {param.opts[0] if param.opts else param.name}: {_message(err)}")
    config = opts.get("config")
    if config is not None and not _is_placeholder(config):
        if config not in _PACKAGED:
            found.append(f"{ctx.command_path} -c {config}: not a packaged config (list_packaged_configs)")
    overrides = [o for o in opts.get("overrides") or [] if not _is_placeholder(o)]
    if "overrides" in opts and not found and not _is_placeholder(config):
        try:
            load_config(config, overrides)
        except ConfigError as err:
            found.append(f"{ctx.command_path} {' '.join(overrides)}: {err}")
    return found


# ----------------------------------------------------------------------------------------------- the reader itself
def test_reader_handles_continuations_comments_prefixes_and_placeholders(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text `openfas not-a-block`\n"
        "```bash\n"
        "openfas train -c demo.yaml \\\n"
        "    train.epochs=1   # a comment with --no-such-option\n"
        "OMP_NUM_THREADS=1 nice -n 10 openfas data inspect /tmp/c && echo done\n"
        "torchrun --nproc_per_node=2 $(which openfas) train -c …\n"
        "for s in 0 1; do openfas train --resume runs/<run folder> experiment.seed=$s; done\n"
        "python -m openfas.cli eval runs/<run>/final.safetensors --split test 2>&1 | tee log\n"
        "pip install 'openfas[dlib]'\n"
        "```\n"
        "```python\nopenfas = 1\n```\n"
        "  ```bash\n  .venv/bin/openfas models\n  ```\n")
    got = [(c.where.split(":")[1], c.args) for c in doc_commands(doc)]
    assert got == [
        ("3", ("train", "-c", "demo.yaml", "train.epochs=1")),
        ("5", ("data", "inspect", "/tmp/c")),
        ("6", ("train", "-c", "…")),
        ("7", ("train", "--resume", f"runs/{PLACEHOLDER}", "experiment.seed=$s")),
        ("8", ("eval", f"runs/{PLACEHOLDER}/final.safetensors", "--split", "test")),
        ("15", ("models",)),
    ]
    assert all(problems(args) == [] for _, args in got)


@pytest.mark.parametrize(("args", "expected"), [
    (("trian", "-c", "demo.yaml"), "no sub-command 'trian'"),
    (("data", "prepair", "x", "y", "z"), "no sub-command 'prepair'"),
    (("train", "-c", "demo.yaml", "--epochs", "3"), "No such option: --epochs"),
    (("--no-such-global", "models"), "No such option: --no-such-global"),
    (("train", "-c", "cdcn/no_such.yaml"), "not a packaged config"),
    (("train", "-c", "demo.yaml", "model.not_a_key=1", "train.no_such_key=2"), "no_such_key"),
    (("data", "prepare", "folder", "root", "out", "--size", "big"), "Invalid value for '--size'"),
    (("report", "run-a", "run-b"), "unexpected extra argument(s) ['run-b']"),
    (("report", "run-a", "runs/<b>"), "unexpected extra argument(s) ['runs/<b>']"),
    (("eval", "final.safetensors", "--split"), "'--split' requires an argument"),
])
def test_problems_are_found(args: tuple[str, ...], expected: str) -> None:
    found = problems(args)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize("args", [
    ("--help",), ("data", "--help"), ("--allow-unsigned", "eval", "x.safetensors", "--threshold", "stored"),
    ("predict", "model.safetensors", "a.jpg", "b.mp4", "--format", "json"),  # MODEL-first form
    ("predict", "--model", "some-bundled-name", "a.jpg"), ("serve",), ("serve", "light.onnx", "--port", "8001"),
    ("train", "-c", "nuaa/${m}_nuaa.yaml", "experiment.seed=$s"),
    ("eval", "x.safetensors", "$FLAGS", "--out", "runs/eval-$p"),
])
def test_valid_commands_parse(args: tuple[str, ...]) -> None:
    assert problems(args) == []


# ------------------------------------------------------------------------------------------------------ the docs
ALL = [c for path in DOC_FILES for c in doc_commands(path)]


def test_every_doc_file_is_read() -> None:
    read = {c.where.split(":")[0] for c in ALL}
    assert {"README.md", "docs/cross_dataset.md", "docs/real_faces.md", "docs/masked_recognition.md"} <= read
    assert len([c for c in ALL if c.where.startswith("README.md:")]) >= 20
    assert {c.args[0] for c in ALL if c.args} >= {"train", "eval", "data", "predict", "export", "serve", "calibrate"}


@pytest.mark.parametrize("command", ALL, ids=[c.where for c in ALL])
def test_doc_command_parses(command: DocCommand) -> None:
    assert problems(command.args) == [], f"{command.where}: openfas {' '.join(command.args)}"
