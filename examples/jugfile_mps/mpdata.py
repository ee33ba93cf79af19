"""Where the MPs' documents come from: generated offline, or downloaded from Wikipedia.

Generated documents are word salad with structure: every MP's text mixes a
shared background vocabulary with the words of two or three topics drawn for
that MP, so the words that set one MP apart are known in advance.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

BACKGROUND = """
the of and in to a was for as on by with at from that is their
which it an be has had were member parliament elected election general house
commons party constituency seat majority vote votes government minister
secretary shadow committee select spokesperson career born educated school
university college degree worked before became after first later also served
until when during while since between both former new local national public
year years office council councillor candidate campaign support supported
opposed bill debate policy policies leader leadership cabinet backbench
backbencher whip chair chairman deputy group report reports member's speech
parliamentary early life family married children lives london area county
town city region south north east west raised studied trained job
interest interests including particular issues issue work working called
against over under into more most other some such than then there this these
those through two three four many several number time times british united
kingdom england scotland wales majesty's act acts law laws motion question
questions answer reform reforms service services budget role roles term
""".split()

# Each topic's words belong to no other topic and not to the background, so a
# word found to set an MP apart points back at exactly one of the MP's topics.
TOPICS = {
    "health": "nhs hospital hospitals nurses patients clinical waiting surgery doctors wards midwives ambulance".split(),
    "fishing": "fishing fishermen trawler trawlers quotas harbour catches cod haddock vessels landings skippers".split(),
    "farming": "farming farmers livestock dairy subsidies crops harvest cattle sheep agriculture tenant grazing".split(),
    "railways": "railway railways rail trains franchise commuters stations signalling electrification timetable carriages sleeper".split(),
    "defence": "defence army navy troops regiment armed forces veterans deployment frigates submarines garrison".split(),
    "schools": "schools pupils teachers curriculum academies classrooms exams headteachers ofsted tuition nursery".split(),
    "housing": "housing homes tenants landlords rents mortgage homelessness estates planning affordable leasehold".split(),
    "energy": "energy nuclear turbines offshore wind gas pipelines electricity grid renewables solar".split(),
    "europe": "european brussels treaty referendum eurozone directive commission maastricht sovereignty membership".split(),
    "taxation": "tax taxes taxation treasury vat income allowance revenue levy exchequer duties".split(),
    "policing": "police policing officers crime constables burglary sentencing offenders custody patrols".split(),
    "immigration": "immigration asylum migrants visas borders refugees detention deportation citizenship settlement".split(),
    "environment": "climate emissions carbon pollution recycling biodiversity wildlife conservation woodland habitats".split(),
    "roads": "roads motorway bypass congestion potholes highways junction traffic motorists tolls".split(),
    "pensions": "pensions pensioners retirement annuities savings allowances elderly care carers winter".split(),
    "welfare": "welfare benefits universal credit poverty jobcentre claimants sanctions disability foodbanks".split(),
    "devolution": "devolution assembly holyrood senedd devolved independence unionist nationalist powers home".split(),
    "mining": "mining miners coalfield collieries pits colliery strike coal slag pithead".split(),
    "manufacturing": "manufacturing factories steel shipbuilding engineering apprenticeships plant workforce exports shipyards".split(),
    "banking": "banking banks bankers regulation bonuses lending deposits mortgages finance brokers".split(),
    "technology": "broadband digital internet technology mobile coverage data cyber online software".split(),
    "arts": "arts museums theatre galleries heritage libraries orchestras festival artists culture".split(),
    "sport": "sport football stadium olympics cricket rugby athletes clubs league fans".split(),
    "aid": "aid development africa famine overseas charities malaria vaccines humanitarian relief".split(),
    "ireland": "ulster belfast stormont loyalist republican ceasefire decommissioning paramilitary border agreement".split(),
    "flooding": "flooding floods rivers drainage reservoirs water sewage coastal erosion defences".split(),
    "justice": "prisons prisoners courts judges probation magistrates tribunals jury rehabilitation".split(),
    "unions": "unions union trade strikes wages workers pay bargaining shop stewards".split(),
    "tourism": "tourism tourists hotels seaside resorts visitors holiday attractions piers promenade".split(),
    "science": "science research universities scientists laboratories innovation funding students grants physics".split(),
}

TOPIC_SHARE = 0.3  # of an MP's words come from their topics, the rest from the background


def _rng(mp: str) -> random.Random:
    # hash() differs between processes; sha256 gives every worker the same document.
    seed = int.from_bytes(hashlib.sha256(mp.encode("utf-8")).digest()[:8], "big")
    return random.Random(seed)


def _zipf(n: int) -> list[float]:
    """Cumulative weights 1, 1/2, 1/3 ...: a few words are common, most are rare, as in text."""
    total, cumulative = 0.0, []
    for rank in range(1, n + 1):
        total += 1.0 / rank
        cumulative.append(total)
    return cumulative


def _pick(rng: random.Random, words: list[str], cumulative: list[float]) -> str:
    # Only random() has a sequence Python promises to keep across versions;
    # choices() and friends may change, and nodes may run different Pythons.
    return words[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def _draw_interests(rng: random.Random) -> list[str]:
    names = list(TOPICS)
    wanted = 2 + (rng.random() < 0.5)
    chosen: list[str] = []
    while len(chosen) < wanted:
        topic = names[int(rng.random() * len(names))]
        if topic not in chosen:
            chosen.append(topic)
    return chosen


def interests(mp: str) -> list[str]:
    """The topics `generate(mp)` draws from: what divergence should rediscover."""
    return _draw_interests(_rng(mp))


def generate(mp: str) -> str:
    """A deterministic document of a few hundred words for `mp`."""
    rng = _rng(mp)
    topics = [TOPICS[name] for name in _draw_interests(rng)]
    weights = [_zipf(len(topic)) for topic in topics]
    background = _zipf(len(BACKGROUND))
    length = 250 + int(rng.random() * 350)
    words = []
    for _ in range(length):
        if rng.random() < TOPIC_SHARE:
            i = int(rng.random() * len(topics))
            words.append(_pick(rng, topics[i], weights[i]))
        else:
            words.append(_pick(rng, BACKGROUND, background))
    sentences, start = [f"{mp} is a British politician."], 0
    while start < len(words):
        end = start + 8 + int(rng.random() * 10)
        sentence = " ".join(words[start:end])
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        start = end
    return "\n".join(" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)) + "\n"


WIKIPEDIA_API = "https://en.wikipedia.org/w/api.php"
USER_AGENT = "taskflow-example-mps/1.0 (taskflow tutorial: MP biographies, one request per page; Python urllib)"


def fetch_wikipedia(title: str, api: str = WIKIPEDIA_API, timeout: float = 30.0) -> str:
    """The plain text of the English Wikipedia article `title` (redirects followed)."""
    query = urllib.parse.urlencode({
        "action": "query", "prop": "extracts", "explaintext": "1", "redirects": "1",
        "format": "json", "formatversion": "2", "titles": title,
    })
    request = urllib.request.Request(f"{api}?{query}", headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.load(response)
    except OSError as e:  # URLError, timeouts and refused connections are all OSErrors
        raise RuntimeError(f"cannot download the Wikipedia page {title!r}: {e}; "
                           "without --fetch the example uses generated documents") from None
    pages = data.get("query", {}).get("pages", [])
    if not pages or pages[0].get("missing") or not pages[0].get("extract"):
        raise RuntimeError(f"Wikipedia has no page {title!r}")
    return pages[0]["extract"]


def save_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the whole file or none (workers share the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
