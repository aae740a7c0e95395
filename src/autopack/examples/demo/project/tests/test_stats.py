from textkit.stats import char_count, word_count, words


def test_words_split_on_whitespace():
    assert words("a  b\tc\nd") == ["a", "b", "c", "d"]


def test_word_count_keeps_hyphenated_words_whole():
    assert word_count("state-of-the-art design") == 2


def test_word_count_empty():
    assert word_count("") == 0


def test_char_count_with_and_without_spaces():
    assert char_count("a b c") == 5
    assert char_count("a b c", spaces=False) == 3
