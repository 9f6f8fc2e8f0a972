"""``python -m course_utils doctor [--no-load] | notebooks [--check] | progress [--chapter NN] | grade ... |
book [...]``."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch the course's command-line tools."""
    argv = sys.argv[1:] if argv is None else argv
    cmd, rest = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "doctor":
        from .course.doctor import main as doctor

        return doctor(rest)
    if cmd == "notebooks":
        from .course.lessons import main as lessons

        return lessons([cmd, *rest])
    if cmd == "progress":
        from .course.checks import main as progress

        return progress(rest)
    if cmd == "grade":
        from .course.grade import main as grade

        return grade(rest)
    if cmd == "book":
        from .course.book import main as book

        return book(rest)
    print("usage: python -m course_utils doctor [--no-load] | notebooks [--check] | progress [--chapter NN]"
          " | grade SUBMISSION... [--out grades.csv]"
          " | book [--profile cpu] [--chapters 00,01] [--no-execute] [--force] [--out build/book]")
    return 2


if __name__ == "__main__":
    sys.exit(main())
