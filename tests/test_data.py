import pytest

from course_utils.data import load_lines


def test_probe_sentences_ship_with_the_package():
    lines = load_lines("probe_sentences.txt")
    assert len(lines) == 12 and all(lines)


def test_missing_file_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match="probe_sentences.txt"):
        load_lines("nope.txt")
