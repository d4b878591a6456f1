"""Sentences of our own making for the natural voice (issue 22), beside LJSpeech's.

LJSpeech reads 19th- and 20th-century prose; rtvoice also speaks announcements and
assistant answers. This deterministic generator (one seed) writes times, dates, prices,
phone numbers, units, addresses, questions, short commands, and one- and two-word
utterances, then puts each through rtvoice's own text front end as synthesis does
(``training.data.clean``: ``rtvoice.text.normalize`` with the runtime's default reading), as
``training.data corpus`` does, so the stored ``text`` is what the student reads and what the
teacher speaks::

    python -m training.corpus_extra [--count 3000] [--seed 22]   # -> training/corpus-extra.tsv

The file has corpus.tsv's columns plus ``raw`` (the text before normalization). Lines are
numbered from :data:`FIRST_INDEX`, apart from LJSpeech's. ``--heldout`` of them (a seeded
pick) are marked ``heldout``: they validate, they do not train. Re-run it after rtvoice's
normalizer changes (then ``python -m training.teacher phonemize`` again): the rows keep
their raw text and index, only the normalized ``text`` follows the front end.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from training.data import Row

log = logging.getLogger("training.corpus_extra")

HERE = Path(__file__).resolve().parent
EXTRA = HERE / "corpus-extra.tsv"
FIRST_INDEX = 100_000
SEED = 22
COUNT = 3000
HELDOUT = 100
_WORD_COLON = re.compile(r"[a-z]:[a-z]")

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_PLACES = ["the station", "the airport", "platform 4", "gate 12", "the main entrance", "the library", "the office",
           "the north car park", "room 210", "the city hall", "the museum", "the harbor", "terminal B", "the clinic"]
_STREETS = ["Main Street", "Oak Avenue", "Elm Street", "Park Road", "Lake Drive", "Hill Lane", "River Road",
            "Maple Avenue", "Church Street", "Station Road", "Market Square", "Cedar Court", "Sunset Boulevard"]
_CITIES = ["Springfield", "Boston", "Denver", "Portland", "Austin", "Chicago", "Seattle", "Atlanta", "Phoenix",
           "San Diego", "New York", "Dallas", "Miami", "Detroit"]
_NAMES = ["Anna", "James", "Maria", "David", "Sarah", "Michael", "Emma", "Daniel", "Olivia", "Thomas", "Sophie",
          "Peter", "Laura", "Kevin", "Grace", "Martin"]
_ITEMS = ["coffee", "the tickets", "a sandwich", "the book", "two apples", "the parcel", "a new battery", "the shoes",
          "this jacket", "the lamp", "a bus pass", "the repair", "lunch", "the groceries"]
_UNITS = [("kilometers", "km"), ("miles", "mi"), ("kilograms", "kg"), ("pounds", "lb"), ("liters", "l"),
          ("meters", "m"), ("degrees", "degrees"), ("percent", "%"), ("minutes", "minutes"), ("hours", "hours"),
          ("grams", "g"), ("feet", "ft"), ("inches", "in"), ("seconds", "seconds")]
_COMMANDS = ["Turn on the lights.", "Turn off the radio.", "Stop.", "Play some music.", "Pause the music.",
             "Open the door.", "Close the window.", "Call {name}.", "Read my messages.", "Set an alarm for {time}.",
             "Remind me at {time}.", "Start the timer.", "Cancel that.", "Go back.", "Next song.", "Louder, please.",
             "Turn it down.", "Mute.", "Lock the front door.", "Show me the weather.", "Add {item} to the list.",
             "Wake me up at {time}.", "Send a message to {name}.", "Repeat that.", "Skip this one.",
             "Set the thermostat to {n} degrees.", "Dim the lights to {pct} percent."]
_QUESTIONS = ["What time is it?", "Where is {place}?", "How far is it to {city}?", "Is it going to rain today?",
              "What is the weather like in {city}?", "Can you help me?", "Did you mean {name}?",
              "Would you like {item}?", "Which platform does the train leave from?", "How much does {item} cost?",
              "When does the store open?", "Are you sure?", "Shall I read it again?", "Who called at {time}?",
              "Do you want to hear the news?", "Is {name} coming at {time}?", "Why is the line busy?",
              "How long will it take?", "What is {a} plus {b}?", "Is the meeting on {day}?",
              "Could you repeat the number, please?", "Have you seen {item}?", "Which way is {place}?"]
_WORDS = ["Yes.", "No.", "Okay.", "Hello.", "Goodbye.", "Thanks.", "Sorry.", "Ready.", "Done.", "Welcome.",
          "Attention.", "Warning.", "Error.", "Stop.", "Wait.", "Listen.", "Please.", "Great.", "Maybe.",
          "Of course.", "Thank you.", "Good morning.", "Good night.", "Well done.", "Not yet.", "All right.",
          "Excuse me.", "See you.", "Right now.", "No problem.", "Got it.", "Try again.", "Almost there.",
          "Timer done.", "Low battery.", "Door open.", "Call ended.", "Message sent.", "Hello there!", "Goodbye!",
          "Really?", "Why?", "Where?", "Now?", "Ready?", "Seriously?", "Alarm.", "Cancelled.", "Confirmed.",
          "Boarding.", "Delayed.", "Arriving.", "Departing.", "Left.", "Right.", "Forward.", "Backward.",
          "Upstairs.", "Downstairs.", "Tomorrow.", "Today.", "Yesterday."]


def _time(r: random.Random) -> str:
    h, m = r.randint(1, 12), r.choice([0, 5, 10, 15, 20, 30, 40, 45, 50, 55, r.randint(0, 59)])
    style = r.random()
    if style < 0.4:
        return f"{h}:{m:02d}"
    if style < 0.8:
        return f"{h}:{m:02d} {r.choice(['a.m.', 'p.m.'])}"
    return f"{h} o'clock"


def _date(r: random.Random) -> str:
    month, day, year = r.choice(_MONTHS), r.randint(1, 28), r.randint(1950, 2035)
    style = r.random()
    if style < 0.4:
        return f"{month} {day}, {year}"
    if style < 0.7:
        return f"{r.choice(_DAYS)}, {month} {day}"
    return f"{month} {day}"


def _price(r: random.Random) -> str:
    return r.choice([f"${r.randint(1, 99)}.{r.randint(0, 99):02d}", f"${r.randint(1, 5000)}",
                     f"{r.randint(2, 99)} cents", f"${r.randint(1, 20)}.{r.choice([0, 25, 50, 75, 99]):02d}"])


def _phone(r: random.Random) -> str:
    a, b, c = r.randint(200, 999), r.randint(200, 999), r.randint(0, 9999)
    return r.choice([f"{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"{a} {b} {c:04d}", f"1-800-{b}-{c:04d}"])


def _fill(template: str, r: random.Random) -> str:
    return template.format(name=r.choice(_NAMES), time=_time(r), place=r.choice(_PLACES), city=r.choice(_CITIES),
                           item=r.choice(_ITEMS), n=r.randint(16, 28), pct=r.choice([10, 20, 25, 50, 75, 80]),
                           a=r.randint(2, 99), b=r.randint(2, 99), day=r.choice(_DAYS))


def _times(r: random.Random) -> str:
    return r.choice(["The train to {city} leaves at {t}.", "Your appointment is at {t}.", "It is now {t}.",
                     "The meeting starts at {t} on {day}.", "Doors open at {t}.", "I will call you back at {t}.",
                     "The next bus arrives at {t}.", "Your alarm is set for {t}.", "Lunch is served from {t}.",
                     "The store closes at {t} tonight."]).format(t=_time(r), city=r.choice(_CITIES),
                                                                  day=r.choice(_DAYS))


def _dates(r: random.Random) -> str:
    return r.choice(["The concert is on {d}.", "She was born on {d}.", "The offer ends {d}.", "Today is {d}.",
                     "Your package will arrive on {d}.", "The office is closed on {d}.", "We met on {d}.",
                     "Payment is due by {d}."]).format(d=_date(r))


def _prices(r: random.Random) -> str:
    return r.choice(["That will be {p}, please.", "The ticket costs {p}.", "Your total is {p}.", "{item} is {p}.",
                     "You saved {p} today.", "The fare went up to {p}.", "It costs {p} a month."]
                    ).format(p=_price(r), item=r.choice(_ITEMS).capitalize())


def _phones(r: random.Random) -> str:
    return r.choice(["Call me at {n}.", "The number is {n}.", "Please dial {n}.", "You have a missed call from {n}.",
                     "For help, call {n}.", "{name}'s number is {n}."]).format(n=_phone(r), name=r.choice(_NAMES))


def _units(r: random.Random) -> str:
    word, short = r.choice(_UNITS)
    n = r.choice([str(r.randint(1, 500)), f"{r.randint(0, 99)}.{r.randint(1, 9)}"])
    unit = short if r.random() < 0.4 else word
    return r.choice(["It is {n} {u} from here.", "The temperature is {n} {u}.", "Add {n} {u}.", "That is {n} {u}.",
                     "The box weighs {n} {u}.", "We drove {n} {u} today.", "Battery at {n} {u}."]).format(n=n, u=unit)


def _addresses(r: random.Random) -> str:
    street, number, city = r.choice(_STREETS), r.randint(1, 2500), r.choice(_CITIES)
    return r.choice(["The address is {n} {s}, {c}.", "Turn right onto {s}.", "Deliver it to {n} {s}.",
                     "The shop is at {n} {s}, apartment {a}.", "Meet me on {s} in {c}.",
                     "{name} lives at {n} {s}."]).format(n=number, s=street, c=city, a=r.randint(1, 40),
                                                        name=r.choice(_NAMES))


def _questions(r: random.Random) -> str:
    return _fill(r.choice(_QUESTIONS), r)


def _commands(r: random.Random) -> str:
    return _fill(r.choice(_COMMANDS), r)


def _short(r: random.Random) -> str:
    return r.choice(_WORDS)


def _announcements(r: random.Random) -> str:
    return r.choice(["The train on platform {n} is delayed by {m} minutes.", "Flight {n}{m} to {c} is now boarding "
                     "at gate {g}.", "Please stand clear of the closing doors.", "The next stop is {s}.",
                     "Attention, please. The store will close in {m} minutes.", "{name}, your order is ready.",
                     "You have {n} new messages.", "Your meeting with {name} starts in {m} minutes.",
                     "It is {t} degrees and sunny in {c}."]).format(
        n=r.randint(1, 12), m=r.randint(2, 45), c=r.choice(_CITIES), g=r.randint(1, 40), s=r.choice(_STREETS),
        name=r.choice(_NAMES), t=r.randint(-5, 38))


KINDS: dict[str, tuple[float, Callable[[random.Random], str]]] = {
    "time": (0.12, _times), "date": (0.10, _dates), "price": (0.10, _prices), "phone": (0.08, _phones),
    "unit": (0.10, _units), "address": (0.10, _addresses), "question": (0.14, _questions),
    "command": (0.12, _commands), "short": (0.06, _short), "announcement": (0.08, _announcements),
}
"""Share of the sentences and the maker of each kind."""


def generate(count: int = COUNT, seed: int = SEED) -> list[tuple[str, str]]:
    """``count`` distinct raw sentences as ``(kind, text)``, the same for the same seed."""
    r = random.Random(seed)
    kinds = list(KINDS)
    weights = [KINDS[k][0] for k in kinds]
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    tries = 0
    while len(out) < count and tries < count * 50:
        tries += 1
        kind = r.choices(kinds, weights)[0]
        text = KINDS[kind][1](r)
        if text in seen and kind != "short":
            continue
        if text in seen and sum(t == text for _, t in out) >= 3:  # a short word may recur, a few times
            continue
        seen.add(text)
        out.append((kind, text))
    return out


def build(out: Path = EXTRA, count: int = COUNT, seed: int = SEED, heldout: int = HELDOUT) -> list[Row]:
    """Generate, normalize with rtvoice.text, pick the held-out rows, write ``out``."""
    from rtvoice.errors import TextError
    from training.data import clean

    raw = generate(count, seed)
    picked = set(random.Random(seed + 1).sample(range(len(raw)), min(heldout, len(raw))))
    logging.getLogger("rtvoice.text").setLevel(logging.ERROR)
    rows, lines, skipped = [], [], 0
    for i, (kind, text) in enumerate(raw):
        try:
            normalized = clean(text)
        except TextError:
            skipped += 1
            continue
        row = Row(FIRST_INDEX + i, "heldout" if i in picked else "train", normalized)
        rows.append(row)
        lines.append(f"{row.index}\t{row.split}\t{row.text}\t{kind}\t{text}\n")
    with out.open("w", encoding="utf-8") as f:
        f.write("index\tsplit\ttext\tkind\traw\n")
        f.writelines(lines)
    log.info("%s: %d sentences (%d held out), %d skipped as unspeakable", out, len(rows),
             sum(r.split == "heldout" for r in rows), skipped)
    colons = sum(bool(_WORD_COLON.search(r.text)) for r in rows)
    if colons:
        # Piper read "eight:fifteen" as "eight colon fifteen" (training/eval/teacher-piper.json), and
        # the student would learn that: the front end should have spelled the time out.
        log.warning("%d sentences keep a colon between words (e.g. %r): the teacher reads it as 'colon'. Hint: "
                    "rebuild after rtvoice.text spells times out", colons,
                    next(r.text for r in rows if _WORD_COLON.search(r.text)))
    return rows


def read_extra(path: Path = EXTRA) -> list[Row]:
    """The rows of corpus-extra.tsv (its ``kind`` and ``raw`` columns are for people)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("index\tsplit\ttext"):
        raise ValueError(f"{path} is not a corpus. Hint: python -m training.corpus_extra")
    rows = []
    for line in lines[1:]:
        index, split, text = line.split("\t")[:3]
        rows.append(Row(int(index), split, text))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.corpus_extra", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=EXTRA)
    p.add_argument("--count", type=int, default=COUNT)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--heldout", type=int, default=HELDOUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.out, args.count, args.seed, args.heldout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
