"""The text corpus of the KV-cache study: named by SICS_TEXT, never downloaded; the Austen novels
read without R; one text held out; a clear line where none is given."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sics.data.text import AUSTEN_NOVELS, load_corpus
from sics.errors import DataError

AUSTEN = os.environ.get("SICS_AUSTEN")  # the extracted janeaustenr package, where there is one
# the characters of each novel, lines joined by newlines (as read here from Debian's 1.0.0-1)
AUSTEN_CHARS = {"emma": 883_027, "mansfieldpark": 883_278, "northangerabbey": 433_410, "persuasion": 466_853,
                "prideprejudice": 684_767, "sensesensibility": 673_687}  # fmt: skip


def test_a_folder_of_texts_holds_out_the_smallest_and_records_its_content(tmp_path, monkeypatch):
    for name, n in (("a", 300), ("b", 120), ("c", 200)):
        (tmp_path / f"{name}.txt").write_text("x" * n)
    (tmp_path / "notes.md").write_text("not a text")
    monkeypatch.setenv("SICS_TEXT", str(tmp_path))
    corpus = load_corpus()
    assert corpus.held_out == "b" and set(corpus.train) == {"a", "c"} and corpus.test == "x" * 120
    assert corpus.source.startswith("plain-text files [") and "3 texts, 620 characters" in corpus.source
    assert load_corpus(tmp_path, held_out="a").test == "x" * 300
    same = corpus.source_id
    (tmp_path / "c.txt").write_text("x" * 199 + "y")
    assert load_corpus(tmp_path).source_id != same  # the content, not the names, keys it


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: None, "no text corpus given: give TEXT=DIR"),
    (lambda p: str(p / "nowhere"), "does not exist"),
    (lambda p: str(p), "holds no .txt file and no janeaustenr data"),
])  # fmt: skip
def test_no_corpus_is_one_line_saying_how_to_get_one(make, says, tmp_path, monkeypatch):
    monkeypatch.delenv("SICS_TEXT", raising=False)
    with pytest.raises(DataError, match=says) as e:
        load_corpus(make(tmp_path))
    assert "\n" not in str(e.value)


def test_a_held_out_text_must_be_in_the_corpus_and_something_must_train(tmp_path):
    (tmp_path / "only.txt").write_text("abc")
    with pytest.raises(DataError, match="at least two texts"):
        load_corpus(tmp_path)
    (tmp_path / "other.txt").write_text("abcd")
    with pytest.raises(DataError, match="held-out text 'missing' is not in the corpus"):
        load_corpus(tmp_path, held_out="missing")


@pytest.mark.skipif(not AUSTEN, reason="needs the extracted janeaustenr package (SICS_AUSTEN) and rdata")
def test_the_austen_novels_are_read_without_r():
    pytest.importorskip("rdata")
    corpus = load_corpus(AUSTEN)
    assert sorted(corpus.texts) == list(AUSTEN_NOVELS)
    assert {k: len(v) for k, v in corpus.texts.items()} == AUSTEN_CHARS
    assert corpus.held_out == "northangerabbey" and corpus.test.startswith("NORTHANGER ABBEY")
    assert corpus.texts["prideprejudice"].startswith("PRIDE AND PREJUDICE\n\nBy Jane Austen\n\n\n\nChapter 1\n")
    assert corpus.source.startswith("Jane Austen's novels (janeaustenr)")


def test_bytes_and_held_out_contexts_are_cut_as_documented():
    from sics.data.text import encode, held_out_contexts

    stream = encode("Emma Woodhouse, handsome, clever, and rich. " * 40)
    ctx = held_out_contexts(stream, context=16, window=4)
    assert ctx.shape == (len(stream) // 21, 21) and ctx.dtype == np.uint8
    assert np.array_equal(ctx[1], stream[21:42])  # non-overlapping, from the start
    assert held_out_contexts(stream, 16, 4, n=3).shape == (3, 21)
    with pytest.raises(DataError, match="holds 83 contexts of 21 bytes, not 100"):
        held_out_contexts(stream, 16, 4, n=100)
