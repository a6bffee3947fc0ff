"""Addition (book ch. 7): ``a+b`` -> the decimal sum, a and b in [0, 999].

No alignment: each sum digit depends on digits of both operands and on the carry, not on one span.
The book reverses the source for this task (``--reverse-source``); reversal is the harness's job.
"""

from __future__ import annotations

import random

from bench.data.tasks.base import Example, TaskData, TaskOptions, register, unique_split

MAX_OPERAND = 999


def _draw(rng: random.Random) -> Example:
    # Like the book's data, the number of digits is drawn first so short operands are not rare.
    a = rng.randrange(10 ** rng.randint(1, 3))
    b = rng.randrange(10 ** rng.randint(1, 3))
    return Example(f"{a}+{b}", str(a + b))


@register("addition", "a+b -> sum, up to three digits each (book ch. 7)", aligned=False)
def make(opts: TaskOptions) -> TaskData:
    return unique_split("addition", _draw, opts)
