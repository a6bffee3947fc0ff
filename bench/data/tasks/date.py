"""Date-format conversion (book ch. 8): a date written in one of many human formats -> ISO ``YYYY-MM-DD``.

The formats follow the variety of the book's ``date.txt`` (month names and abbreviations, weekdays, M/D/YY,
lower/Title/UPPER case) plus day-first and year-first numeric orders, so the model must read the
separators to know which number is the month. Alignments: the year digits come from the year in the
source (all of it for a two-digit year), the month from the month name or number, the day from the day.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random

from bench.data.tasks.base import Example, Span, TaskData, TaskOptions, register, unique_split

FIRST, LAST = dt.date(1970, 1, 1), dt.date(2029, 12, 31)
MONTHS = [calendar.month_name[i] for i in range(1, 13)]
MONTHS_ABBR = [calendar.month_abbr[i] for i in range(1, 13)]
WEEKDAYS = list(calendar.day_name)
WEEKDAYS_ABBR = list(calendar.day_abbr)

# A format is a list of parts: literal text or a field name. Weights roughly follow date.txt.
FORMATS: list[tuple[float, list[str]]] = [
    (4.0, ["{MMMM}", " ", "{d}", ", ", "{yyyy}"]),  # september 27, 1994
    (2.0, ["{MMM}", " ", "{d}", ", ", "{yyyy}"]),  # Sep 30, 1981
    (2.0, ["{EEEE}", ", ", "{MMMM}", " ", "{d}", ", ", "{yyyy}"]),  # TUESDAY, SEPTEMBER 25, 1984
    (3.0, ["{M}", "/", "{d}", "/", "{yy}"]),  # 2/10/93
    (1.0, ["{d}", " ", "{MMMM}", " ", "{yyyy}"]),  # 27 September 1994
    (1.0, ["{EEE}", ", ", "{d}", " ", "{MMM}", " ", "{yyyy}"]),  # Tue, 27 Sep 1994
    (1.0, ["{dd}", ".", "{MM}", ".", "{yyyy}"]),  # 27.09.1994
    (1.0, ["{yyyy}", "/", "{MM}", "/", "{dd}"]),  # 1994/09/27
]
_WEIGHTS = [w for w, _ in FORMATS]


def _fields(rng: random.Random, d: dt.date) -> dict[str, str]:
    case = rng.choice((str.lower, str.title, str.upper))  # one case for the whole string, as in date.txt
    return {
        "MMMM": case(MONTHS[d.month - 1]),
        "MMM": case(MONTHS_ABBR[d.month - 1]),
        "EEEE": case(WEEKDAYS[d.weekday()]),
        "EEE": case(WEEKDAYS_ABBR[d.weekday()]),
        "M": str(d.month),
        "MM": f"{d.month:02d}",
        "d": str(d.day),
        "dd": f"{d.day:02d}",
        "yy": f"{d.year % 100:02d}",  # 70-99 -> 19xx, 00-29 -> 20xx: unambiguous in [1970, 2029]
        "yyyy": str(d.year),
    }


def render(rng: random.Random, d: dt.date) -> Example:
    """One date in a random format, with the source span of each ISO character."""
    parts = rng.choices(FORMATS, weights=_WEIGHTS)[0][1]
    values = _fields(rng, d)
    src, spans = "", {}
    for p in parts:
        if p.startswith("{"):
            key = p[1:-1]
            role = "year" if key.startswith("y") else "month" if key.startswith("M") else "day" if key.startswith("d") else None
            if role:
                spans[role] = (len(src), len(src) + len(values[key]))
            src += values[key]
        else:
            src += p
    tgt = d.isoformat()
    y, m, dd = spans["year"], spans["month"], spans["day"]
    align: list[Span | None] = [y] * 4 + [None] + [m] * 2 + [None] + [dd] * 2
    return Example(src, tgt, tuple(align))


def _draw(rng: random.Random) -> Example:
    d = FIRST + dt.timedelta(days=rng.randrange((LAST - FIRST).days + 1))
    return render(rng, d)


@register("date", "human-written dates -> YYYY-MM-DD (book ch. 8)", aligned=True)
def make(opts: TaskOptions) -> TaskData:
    return unique_split("date", _draw, opts)
