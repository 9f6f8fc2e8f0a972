"""The course machinery, apart from the teaching modules a learner reads: the chapter list (``chapters``), the
notebook build (``lessons``), the exercises (``checks`` and ``exercises/``), the quiz, the glossary, the grader,
the instructors' guide, the book, the environment check (``doctor``) and the offline guard (``network``)."""
