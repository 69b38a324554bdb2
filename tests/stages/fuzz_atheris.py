"""Coverage-guided fuzzing of the normaliser and the command parser with atheris (libFuzzer).

    .venv/bin/python tests/stages/fuzz_atheris.py -runs=200000 [-seed=1] [corpus dir]

Where the hypothesis fuzzer (``fuzz_run.py``) knows the formats and breaks them on purpose,
libFuzzer mutates bytes and keeps whatever reaches new code in ``scv`` and the pure-Python
libraries it parses with (email-validator, idna), starting from the valid events of
``hostile.example_docs``. The first byte picks the target (four raw sources, commands).

For every input: :func:`normalize` / :func:`parse_command` return or raise ``InvalidEvent``
(anything else, or a reason starting ``internal_error``, is a bug); an accepted event's
identifiers are clean canonical values (``fuzzkit.identifier_problem``) and it encodes to
JSON (the stage writes it with orjson). At the end the counts are printed as one JSON line.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["scv", "email_validator", "idna"]):
    import orjson

    from scv.domain.commands import parse_command
    from scv.domain.model import SOURCES
    from scv.domain.normalize import InvalidEvent, normalize

from fuzzkit import COMMANDS, REASON, identifier_problem, schema_words
from hostile import example_docs

TARGETS = (*SOURCES, COMMANDS)
COUNTS: Counter[str] = Counter()
RUNS = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("-runs=")), 0)


def one_input(data: bytes) -> None:
    COUNTS["inputs"] += 1
    try:
        check(data)
    finally:
        if COUNTS["inputs"] == RUNS:  # libFuzzer exits from C: no atexit, so report here
            print(json.dumps({"atheris_runs": RUNS, **dict(sorted(COUNTS.items()))}), flush=True)


def check(data: bytes) -> None:
    if not data:
        return
    target, raw = TARGETS[data[0] % len(TARGETS)], data[1:]
    try:
        if target == COMMANDS:
            parse_command(raw)
            COUNTS["commands_accepted"] += 1
        else:
            event = normalize(target, raw)
            for kind, value in event.identifiers:
                problem = identifier_problem(kind, value)
                if problem is not None:
                    raise AssertionError(f"{target}: {kind} {value!r}: {problem}")
            orjson.dumps(event.to_dict())
            COUNTS["events_accepted"] += 1
    except InvalidEvent as exc:
        if not REASON.match(exc.reason):
            raise AssertionError(f"{target}: reason {exc.reason!r} is not bad input's") from exc
        COUNTS["rejected"] += 1
        COUNTS[f"reason:{exc.reason.split(':')[0]}"] += 1


def seed_corpus(directory: Path) -> None:
    """One file per valid shape (target byte + JSON), for libFuzzer to start from."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (target, doc) in enumerate(example_docs()):
        (directory / f"seed-{i}").write_bytes(bytes([TARGETS.index(target)]) + orjson.dumps(doc))


def write_dictionary(path: Path) -> None:
    """libFuzzer's dictionary: JSON tokens, every schema word as a key and as a value, and
    hostile characters as JSON escapes, so mutations stay JSON more often."""
    tokens = {"{", "}", "[", "]", ":", ",", '":"', "null", "true", "false", "-0", "1e308"}
    tokens |= {f'"{w}"' for w in schema_words() if len(w) < 40 and w.isprintable()}
    tokens |= {"\\u200b", "\\u202e", "\\u0000", "\\ud800", "\\uff20", "@", "xn--"}
    lines = [json.dumps(t) for t in sorted(tokens)]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    args = list(sys.argv)
    corpus = [a for a in args[1:] if not a.startswith("-")]
    if corpus:
        seed_corpus(Path(corpus[0]))
        if not any(a.startswith("-dict=") for a in args):
            dictionary = Path(corpus[0]).with_suffix(".dict")
            write_dictionary(dictionary)
            args.append(f"-dict={dictionary}")
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
