"""Each filter on a row it must keep and a row it must drop, with the reason it gives."""

from __future__ import annotations

import pyarrow as pa
import pytest
from curate_corpus import make_docs

from curate.filters import build_filters
from curate.filters.pii import PiiFilter, PiiRedactor
from workbench.errors import InputError

PROSE = ("The committee met on Tuesday to discuss the budget for the coming year. Members agreed that the "
         "library needs more funding, and that the roof of the town hall should be repaired before winter. "
         "A vote was held at the end of the meeting. The proposal passed with a large majority. Everyone "
         "was asked to send their comments to the secretary by the end of the month. The next meeting will "
         "be held in the spring, and the public is welcome to attend it.")


def run_filter(name: str, texts: list[str], **settings) -> list:
    (step,) = build_filters([name], {name: settings} if settings else {}, ["text"])
    return step.decide(pa.array(texts, pa.large_string()))


@pytest.mark.parametrize("name,bad,reason", [
    ("length", "tiny", "length:min_words"),
    ("gopher_quality", "word " * 20, "gopher_quality:min_doc_words"),
    ("gopher_quality", "# " * 30 + PROSE, "gopher_quality:symbol_word_ratio"),
    ("gopher_repetition", "\n".join(["buy cheap pills now"] * 10 + [PROSE]), "gopher_repetition:dup_line_frac"),
    ("c4", PROSE.replace("budget", "lorem ipsum"), "c4:lorem_ipsum"),
    ("c4", "function f() { return 1; } " + PROSE, "c4:curly_bracket"),
    ("c4", "Home\nAbout us\nContact\nLogin", "c4:too_few_sentences"),
    ("fineweb", "Home\nAbout us\nContact\nLogin\nShop\nCart", "fineweb:line_punct_ratio"),
    ("fineweb", PROSE + "\n" + PROSE, "fineweb:char_dup_ratio"),
    ("language", "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et des réparations.",
     "language:fr"),
])
def test_filter_keeps_prose_and_drops_the_bad_row(name, bad, reason):
    settings = {"min_words": 5} if name == "length" else {}
    keep, drop = run_filter(name, [PROSE, bad], **settings)
    assert keep is True
    assert drop[0] is False and drop[1] == reason and drop[2]


def test_gopher_quality_on_shakespeare_keeps_real_text():
    docs = make_docs(5, length=120)
    assert run_filter("gopher_quality", docs) == [True] * 5


def test_length_in_tokens_with_a_tokenizer(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    decisions = run_filter("length", [PROSE, "hi"], min_tokens=5, tokenizer=str(tmp_path / "tok"))
    assert decisions[0] is True and decisions[1][1] == "length:min_tokens"


def test_unknown_filter_or_setting_is_an_input_error():
    with pytest.raises(InputError, match="unknown filter 'perplexity'"):
        build_filters(["perplexity"], {}, ["text"])
    with pytest.raises(InputError, match="'length': unknown setting 'min_wordz'"):
        build_filters(["length"], {"length": {"min_wordz": 3}}, ["text"])


PII_TEXT = ("Write to jane.roe@example.org, call +1 555-867-5309 or (555) 123-4567, the host is 203.0.113.9, "
            "and the key is AKIAIOSFODNN7EXAMPLE with password = 'hunter2hunter2x'.")


def test_pii_redaction_replaces_every_kind():
    step = PiiRedactor(["text"])
    out = step.apply(pa.table({"text": [PII_TEXT, PROSE]}))
    text = out["text"][0].as_py()
    for placeholder in ("<EMAIL>", "<PHONE>", "<IP_ADDRESS>", "<SECRET>"):
        assert placeholder in text
    for leaked in ("jane.roe", "867-5309", "123-4567", "203.0.113.9", "AKIAIOSFODNN7EXAMPLE", "hunter2"):
        assert leaked not in text
    assert out["text"][1].as_py() == PROSE
    assert step.stats()["redacted"] == {"secret": 2, "email": 1, "ip_address": 1, "phone": 2}


def test_pii_redaction_inside_conversations():
    messages = [[{"role": "user", "content": "my mail is a.b@c.com"}, {"role": "assistant", "content": "noted"}]]
    out = PiiRedactor(["messages"]).apply(pa.table({"messages": messages}))
    assert out["messages"].to_pylist() == [[{"role": "user", "content": "my mail is <EMAIL>"},
                                            {"role": "assistant", "content": "noted"}]]


def test_pii_drop_mode_names_the_kind():
    keep, drop = PiiFilter(["text"]).decide(pa.array([PROSE, "reach me at x@y.io"], pa.large_string()))
    assert keep is True and drop[:2] == (False, "pii:email")


# Fidelity to datatrove's rules, one hand-made document per fixed difference (bench/filters_parity.py
# measures the whole corpus against datatrove itself; these tests do not need it installed).
SENTENCES = ["The king rode out at dawn.", "His men followed him to the river.", "They waited there all day.",
             "Nobody came to meet them.", "At night they went home again."]


def test_c4_counts_a_sentence_that_ends_in_a_closing_quote():
    quoted = [s[:-1] + ".'" if i % 2 else '"' + s[:-1] + '?"' for i, s in enumerate(SENTENCES)]
    assert run_filter("c4", ["\n".join(quoted)]) == [True]
    from curate.filters.c4 import count_sentences

    assert count_sentences("He said 'go.' Then he left. Mr. Smith stayed?\"") == 3


def test_c4_drops_lines_that_end_in_an_ellipsis():
    trailing = [s[:-1] + "..." for s in SENTENCES]
    (decision,) = run_filter("c4", ["\n".join(trailing[:2] + SENTENCES[:4])])
    assert decision[1] == "c4:too_few_sentences" and decision[2].startswith("4 sentences in 4")


def test_c4_curly_bracket_only_drops_when_it_is_in_a_kept_line():
    code = "def f(x):\n    return {x: 1}\n"
    assert run_filter("c4", [code + "\n".join(SENTENCES)]) == [True]
    (decision,) = run_filter("c4", ["\n".join(SENTENCES) + "\nThe map {a: 1} was kept here."])
    assert decision[1] == "c4:curly_bracket"


def test_fineweb_line_punctuation_ignores_quotes_and_counts_indentation():
    quoted = "\n".join(f'"{s[:-1]}"' for s in SENTENCES * 2)  # no sentence terminal at any line end
    assert run_filter("fineweb", [quoted])[0][1] == "fineweb:line_punct_ratio"
    indented = "\n".join([f"{' ' * i}The same line is written here once more, indented." for i in range(8)])
    assert run_filter("fineweb", [indented]) == [True]  # the lines differ by their indentation


def test_fineweb_thresholds_are_strict():
    # exactly 12% of lines end in a terminal: datatrove keeps it (ratio < 0.12 drops)
    lines = [f"line number {i} of a long list without any ending mark at all" for i in range(22)]
    text = "\n".join(lines + ["This line ends in a period and is long enough.", "So does this one, also long."])
    assert run_filter("fineweb", [text], line_punct_thr=2 / 24) == [True]
    assert run_filter("fineweb", [text], line_punct_thr=2 / 24 + 1e-9)[0][1] == "fineweb:line_punct_ratio"


def test_gopher_needs_two_distinct_stop_words():
    body = " ".join(f"word{i} alpha beta gamma delta" for i in range(12))
    (decision,) = run_filter("gopher_quality", [body + " the the the the"])
    assert decision[1] == "gopher_quality:stop_words" and decision[2] == "1 distinct stop words"
    assert run_filter("gopher_quality", [body + " the and"]) == [True]


def test_gopher_words_split_off_punctuation():
    from curate.filters.words import split_words

    assert split_words('"Wonder," she said... 3.14, 1,000 x=3 \\frac{1}{2}.') == [
        '"', "Wonder", ",", '"', "she", "said", "...", "3.14", ",", "1,000", "x=3", "\\frac", "{", "1", "}",
        "{", "2", "}", "."]
    # 50 words each followed by a comma: 100 tokens, 50 of them words; mean word length excludes the commas
    text = ", ".join(["the", "and", "river"] * 17)
    assert run_filter("gopher_quality", [text], min_doc_words=52)[0][2] == "51 words"


def test_gopher_alpha_rule_counts_whitespace_words_not_punctuation_tokens():
    dialogue = " ".join(f'"{s[:-1]}," he said, "and then?"' for s in SENTENCES * 3)
    assert run_filter("gopher_quality", [dialogue]) == [True]
    numbers = PROSE + " " + " ".join(str(i) for i in range(60))
    assert run_filter("gopher_quality", [numbers])[0][1] == "gopher_quality:non_alpha_words"


def test_gopher_repetition_counts_wonder_comma_and_wonder_period_as_one_word():
    text = "I wonder, I wonder. I wonder! I wonder? I wonder; I wonder: I wonder. The rest is silence, my lord."
    (decision,) = run_filter("gopher_repetition", [text])
    assert decision[1] == "gopher_repetition:top_2_gram" and decision[2] == "'I wonder' x7"


def test_gopher_repetition_keeps_a_short_answer_whose_top_ngram_occurs_once():
    assert run_filter("gopher_repetition", ["The answer is 42."]) == [True]
    assert run_filter("gopher_repetition", [""])[0][1] == "gopher_repetition:empty"


def test_datatrove_compat_undoes_the_deliberate_gopher_differences():
    """`datatrove_compat: true` splits words with datatrove 0.10's English splitter (spaCy) and drops what
    datatrove drops: a short answer whose top 2-gram occurs once, dialogue under 80% tokens with a letter."""
    pytest.importorskip("spacy")
    from curate.filters.words import datatrove_words

    assert datatrove_words('Mr. Smith said "don\'t go."\n  f(a, b)') == [
        "Mr.", "Smith", "said", '"', "do", "n't", "go", ".", '"', "f(a", ",", "b", ")"]
    (decision,) = run_filter("gopher_repetition", ["The answer is 42."], datatrove_compat=True)
    assert decision[1] == "gopher_repetition:top_2_gram"
    dialogue = " ".join(f'"{s[:-1]}," he said, "and then?"' for s in SENTENCES * 3)
    assert run_filter("gopher_quality", [dialogue], datatrove_compat=True)[0][1] == "gopher_quality:non_alpha_words"
    assert run_filter("gopher_quality", [PROSE * 2], datatrove_compat=True) == [True]


def test_dup_ngrams_are_keyed_like_datatrove_words_joined_without_a_separator():
    from curate.filters.gopher import _repeated_ngram_chars

    # ("ab", "c") and ("a", "bc") are one n-gram to datatrove: 3 repeated characters
    assert _repeated_ngram_chars(["ab", "c", "x", "a", "bc"], 2) == 3


def test_affix_words_split_as_datatrove_does_without_spacy():
    """The Gopher filters' words follow spaCy's English tokenizer rules (datatrove 0.10's splitter):
    contractions, abbreviations, units after numbers, infixes, emoticons, a final period."""
    from curate.filters.affixes import affix_words

    text = ('Mr. Smith said "don\'t go." I\'ll pay $3.50 for 2kg at 10am, e.g. f(a, b): 2*3=6 well-known <3 '
            "look'd U.S. end.")
    assert affix_words(text) == [
        "Mr.", "Smith", "said", '"', "do", "n't", "go", ".", '"', "I", "'ll", "pay", "$", "3.50", "for", "2", "kg",
        "at", "10", "am", ",", "e.g.", "f(a", ",", "b", "):", "2", "*", "3=6", "well", "-", "known", "<3", "look'd",
        "U.S.", "end", "."]
    pytest.importorskip("spacy")
    from curate.filters.words import datatrove_words as spacy_words

    for doc in make_docs(20) + [text, "def f(x):\n    return x['__init__'] + 1  # it's fine, isn't it?"]:
        assert affix_words(doc) == spacy_words(doc)
