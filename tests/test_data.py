import pytest

from course_utils.data import load_lines


def test_probe_sentences_ship_with_the_package():
    lines = load_lines("probe_sentences.txt")
    assert len(lines) == 12 and all(lines)


def test_missing_file_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match="probe_sentences.txt"):
        load_lines("nope.txt")


def test_sentiment_splits_are_balanced():
    from collections import Counter

    from course_utils.data import SENTIMENT_LABELS, load_sentiment

    sizes = {"train": 60, "dev": 20, "test": 40}
    for split, n in sizes.items():
        data = load_sentiment(split)
        assert Counter(e.label for e in data) == {y: n for y in SENTIMENT_LABELS}
    texts = [e.text for s in sizes for e in load_sentiment(s)]
    assert len(texts) == len(set(texts)) == 360


def test_limit_takes_a_class_balanced_subset():
    from collections import Counter

    from course_utils.data import Example, balanced, load_sentiment

    assert sorted(Counter(e.label for e in load_sentiment("test", limit=16)).values()) == [5, 5, 6]
    data = [Example("a", "x"), Example("b", "x"), Example("c", "y")]
    assert [e.text for e in balanced(data, 2)] == ["a", "c"]
    assert [e.text for e in balanced(data, 10)] == ["a", "c", "b"]


def test_bad_split_and_source_are_clear_errors(monkeypatch):
    import sys

    from course_utils.data import load_sentiment

    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        load_sentiment("validation")
    with pytest.raises(ValueError, match="Unknown source 'imdb'"):
        load_sentiment("test", source="imdb")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if `datasets` were not installed
    with pytest.raises(ImportError, match="pip install datasets"):
        load_sentiment("test", source="sst2")
