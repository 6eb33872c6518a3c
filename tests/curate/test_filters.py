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
