"""``python -m course_utils COMMAND [...]``: the course's command-line tools (``--help`` lists them; each
command has its own ``--help``)."""

import argparse
import importlib
import sys

#: command -> (module:function that takes the remaining arguments, one line of help)
COMMANDS = {
    "doctor": ("course_utils.course.doctor:main", "check this installation: Python, packages, models, device"),
    "notebooks": ("course_utils.course.lessons:main", "regenerate notebooks/ and solutions/ from lessons_src/ "
                                                      "(--check: fail if they drifted)"),
    "progress": ("course_utils.course.checks:main", "your exercise progress (--chapter NN)"),
    "grade": ("course_utils.course.grade:main", "grade submitted notebooks (SUBMISSION... [--out grades.csv])"),
    "book": ("course_utils.course.book:main", "build the static HTML book (--profile, --chapters, --out)"),
    "finetune": ("course_utils.finetune:main", "fine-tune a model: a peft adapter (LoRA) or a model folder (full)"),
    "assistant": ("course_utils.assistant:main", "the capstone end to end: data, fine-tune, evaluation, merge"),
    "figures": ("course_utils.course.figures:main", "redraw the course's static figures (figures/*.svg)"),
}


def parser() -> argparse.ArgumentParser:
    """The top-level command line: one subcommand per tool, the rest of the line passed on to it."""
    p = argparse.ArgumentParser(prog="python -m course_utils", description=__doc__.split("(")[0].strip(),
                                epilog="Each command has its own --help, e.g. python -m course_utils grade --help.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Dispatch the course's command-line tools; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, _ = parser().parse_known_args(argv[:1])
    target, _ = COMMANDS[args.command]
    module, func = target.split(":")
    rest = argv[1:]
    if args.command == "notebooks":
        rest = ["notebooks", *rest]  # lessons.main reads its own command word
    result = getattr(importlib.import_module(module), func)(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
