"""Which words set each British MP apart?

For each of 656 MPs: get a document about them, count its words; add up all
the counts; then find, for each MP, the words their document uses far more
often than the corpus as a whole. 656 x 3 + 1 = 1,969 tasks:

    taskflow execute taskfile.py --jobs 4
    taskflow status taskfile.py

Arguments (after `--`):
    --fetch          download the real Wikipedia pages into documents/ (needs network)
    --delay SECONDS  sleep this long in every task, to watch workers share the graph
"""
import argparse
import hashlib
import re
import time
from pathlib import Path

import numpy as np

import mpdata
from taskflow import TaskGenerator

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents"

parser = argparse.ArgumentParser(prog="taskfile.py", description="Distinctive words of each British MP.")
parser.add_argument("--fetch", action="store_true",
                    help="download missing Wikipedia pages into documents/ instead of generating documents")
parser.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                    help="sleep this long in every task (does not change which tasks there are)")
args = parser.parse_args()


def pause():
    # Read at run time rather than passed to the tasks, so that --delay changes
    # how long tasks take but not which tasks there are.
    time.sleep(args.delay)


def document_path(mp):
    return DOCUMENTS / f"{mp}.txt"


def document_source(mp):
    """Where getdata(mp) takes its text from. It is an argument of the task, so
    results computed from one source are never mistaken for another's."""
    if args.fetch:
        return "wikipedia"
    path = document_path(mp)
    if path.exists():
        # The content, not the name: editing a document makes new tasks downstream of it.
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return "generated"


@TaskGenerator
def getdata(mp, source):
    """The text of one MP's document."""
    pause()
    if source == "generated":
        return mpdata.generate(mp)
    path = document_path(mp)
    if source == "wikipedia" and not path.exists():
        mpdata.save_atomically(path, mpdata.fetch_wikipedia(mp))
    return path.read_text(encoding="utf-8")


# Letters of any script ("öpik"), so names and non-English words stay whole,
# and inner apostrophes ("majesty's").
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


@TaskGenerator
def countwords(mp, document):
    """(words, counts): the document's distinct words, sorted, and how often each occurs."""
    pause()
    # An MP's own name would top their list and tell us nothing.
    name = set(WORD.findall(mp.lower()))
    words = np.array([w for w in WORD.findall(document.lower()) if w not in name], dtype=str)
    return np.unique(words, return_counts=True)


@TaskGenerator
def addcounts(counts):
    """(vocabulary, totals): every word of every document, sorted, and its count in all of them.

    The documents' count vectors are each indexed by their own words; placing
    them in one shared vocabulary is what makes them addable.
    """
    pause()
    vocabulary = np.unique(np.concatenate([words for words, _ in counts]))
    totals = np.zeros(len(vocabulary), dtype=np.int64)
    for words, n in counts:
        totals[np.searchsorted(vocabulary, words)] += n  # a document lists each word once: no lost additions
    return vocabulary, totals


@TaskGenerator
def divergence(corpus, counts, top=10):
    """The `top` words of one document most over-represented against the corpus,
    as [(word, score)], best first.

    A word's score is its term p·log(p/q) in the Kullback-Leibler divergence of
    the document's word frequencies p from the corpus's q: large for a word this
    MP uses often and MPs in general rarely, near zero for words everyone uses.
    """
    pause()
    vocabulary, totals = corpus
    words, n = counts
    if len(words) == 0:
        return []
    p = n / n.sum()
    q = totals[np.searchsorted(vocabulary, words)] / totals.sum()
    score = p * np.log(p / q)
    best = np.argsort(-score, kind="stable")[:top]  # stable: ties keep alphabetical order on every run
    return [(str(words[i]), float(score[i])) for i in best]


mps = [line.strip() for line in (HERE / "MPs.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
documents = [getdata(mp, document_source(mp)) for mp in mps]
counts = [countwords(mp, document) for mp, document in zip(mps, documents)]
corpus = addcounts(counts)
results = [divergence(corpus, c) for c in counts]
