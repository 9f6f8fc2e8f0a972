"""The chapter quizzes: valid data for every chapter, clear errors for bad data, the plain-text and widget forms."""

import copy
import json
import re

import pytest

from course_utils.course import chapters, quiz

STEMS = [c.stem for c in chapters.CHAPTERS]
GOOD = [{"prompt": "2 + 2?", "options": [{"text": "3", "correct": False, "explanation": "one short"},
                                         {"text": "4", "correct": True, "explanation": "yes"},
                                         {"text": "5", "correct": False, "explanation": "one over"}]}]


@pytest.mark.parametrize("stem", STEMS)
def test_every_chapter_has_a_valid_quiz(stem):
    questions = quiz.load_quiz(stem)
    assert 4 <= len(questions) <= 6, f"{stem}: give 4-6 questions"
    for q in questions:
        assert 3 <= len(q.options) <= 4 and sum(o.correct for o in q.options) == 1
        assert all(o.explanation for o in q.options)


def test_every_seed_001_question_is_covered_once_in_a_real_chapter():
    raw = json.loads(quiz.QUIZZES.read_text(encoding="utf-8"))
    assert set(raw) == set(STEMS)
    seeds = [q["seed"] for qs in raw.values() for q in qs if "seed" in q]
    assert sorted(seeds, key=lambda s: int(s.split("§")[1])) == [f"001 §{i}" for i in range(1, 21)]


def bad(edit):
    data = copy.deepcopy(GOOD)
    edit(data[0])
    return data


@pytest.mark.parametrize("edit, message", [
    (lambda q: q["options"][0].update(correct=True), "2 correct options"),
    (lambda q: q["options"][1].update(correct=False), "no correct option"),
    (lambda q: q["options"][2].update(explanation=""), r"option \(c\): missing 'explanation'"),
    (lambda q: q["options"][2].update(text="3"), "duplicate options"),
    (lambda q: q["options"].pop(), "has 2 options"),
    (lambda q: q.update(prompt=" "), "missing 'prompt'"),
])
def test_validate_quiz_names_the_problem(edit, message):
    with pytest.raises(ValueError, match=f"question 1.*{message}"):
        quiz.validate_quiz(bad(edit))


def test_unknown_chapter_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match="unknown chapter '99_nope'.*chapters.CHAPTERS"):
        quiz.validate_quiz(GOOD, "99_nope")
    with pytest.raises(ValueError, match="unknown chapter"):
        quiz.load_quiz("2_prompt_learning")
    assert quiz.validate_quiz(GOOD, "02_prompt_learning")[0].answer_letter == "b"


def test_plain_text_fallback_prints_lettered_questions(monkeypatch, capsys):
    monkeypatch.setenv(quiz.PLAIN_ENV, "1")
    assert quiz.show_quiz("02_prompt_learning") is None
    out = capsys.readouterr().out
    questions = quiz.load_quiz("02_prompt_learning")
    assert 'answer("02_prompt_learning", 1, "b")' in out
    assert re.search(r"^1\. In which order", out, re.M) and re.search(rf"^{len(questions)}\. ", out, re.M)
    assert re.search(r"^   a\) ", out, re.M) and re.search(r"^   c\) ", out, re.M)


def test_plain_text_outside_a_notebook_kernel(monkeypatch, capsys):
    monkeypatch.delenv(quiz.PLAIN_ENV, raising=False)
    assert not quiz.widgets_wanted()  # pytest is not a Jupyter kernel
    assert quiz.show_quiz("00_setup_and_tour") is None and "Quiz: Chapter 0" in capsys.readouterr().out


def test_answer_grades_right_and_wrong():
    q = quiz.load_quiz("02_prompt_learning")[0]
    right = quiz.answer("02_prompt_learning", 1, q.answer_letter)
    assert right.correct and bool(right) and str(right).startswith(f"({q.answer_letter}) Right.")
    wrong_letter = next(letter for letter in "abc" if letter != q.answer_letter)
    wrong = quiz.answer("02_prompt_learning", 1, wrong_letter.upper() + ")")  # tolerant of "B)"
    assert not wrong.correct and "Not quite." in repr(wrong)
    assert wrong.explanation == q.options["abcd".index(wrong_letter)].explanation
    with pytest.raises(ValueError, match="has questions 1-"):
        quiz.answer("02_prompt_learning", 99, "a")
    with pytest.raises(ValueError, match="has options a, b, c"):
        quiz.answer("02_prompt_learning", 1, "z")


def test_widget_checks_an_answer_and_keeps_score():
    pytest.importorskip("ipywidgets")
    ui = quiz.QuizWidget("03_in_context_learning")
    assert len(ui.radios) == len(ui.questions) and "0 / " in ui.score.value
    ui.buttons[0].click()  # nothing chosen yet
    assert "Choose an option" in ui.feedback[0].value
    q = ui.questions[0]
    right = "abcd".index(q.answer_letter)
    ui.radios[0].value = ui.radios[0].options[right]
    ui.buttons[0].click()
    assert "Right." in ui.feedback[0].value and "1 / " in ui.score.value
    wrong = (right + 1) % len(q.options)
    ui.radios[0].value = ui.radios[0].options[wrong]
    ui.buttons[0].click()
    assert "Not quite." in ui.feedback[0].value and "0 / " in ui.score.value
    assert q.options[wrong].explanation.split()[0] in ui.feedback[0].value
    bundle = ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("Quiz: Chapter 3")  # what a frontend without widgets shows


def test_show_quiz_returns_the_widget_in_a_kernel(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.delenv(quiz.PLAIN_ENV, raising=False)
    monkeypatch.setattr(quiz, "in_notebook_kernel", lambda: True)
    assert isinstance(quiz.show_quiz("01_decoder_llms"), quiz.QuizWidget)
    monkeypatch.setenv(quiz.PLAIN_ENV, "1")
    assert not quiz.widgets_wanted()


QUIZ_CELL = 'from course_utils.course.quiz import show_quiz\n\nshow_quiz("{stem}")'


@pytest.mark.parametrize("stem", STEMS)
def test_every_lesson_ends_with_its_quiz_then_its_summary(stem):
    import jupytext

    cells = jupytext.read(chapters.LESSONS / f"{stem}.py").cells
    # the quiz, then one markdown cell: the summary and the further reading close the chapter
    assert cells[-1].cell_type == "markdown" and cells[-1].source.startswith("## Summary"), (
        f"end {stem}.py with a markdown cell '## Summary: what to remember' and '## Further reading'")
    assert cells[-2].cell_type == "code" and cells[-2].source.strip() == QUIZ_CELL.format(stem=stem), (
        f"put the quiz before the summary: a '## Quiz' markdown cell and the code cell {QUIZ_CELL.format(stem=stem)}")
    assert cells[-3].cell_type == "markdown" and cells[-3].source.startswith("## Quiz")
    assert "](../GLOSSARY.md)" in cells[-3].source
