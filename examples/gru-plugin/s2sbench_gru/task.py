"""ROT13 as a plugin task: a lower-case word -> the word with every letter moved 13 places round the alphabet.

Each output letter comes from the input letter at the same place, so the task knows its alignment, and the
report scores whether attention follows it. Registered with the same ``register`` the built-in tasks use; the
splits are drawn by ``unique_split``, so no test word was seen in training.
"""

from __future__ import annotations

import random
import string

from bench.data.tasks import Example, TaskData, TaskOptions, register, unique_split

LENGTHS = (3, 12)  # letters per word


def rot13(word: str) -> str:
    return "".join(chr((ord(c) - ord("a") + 13) % 26 + ord("a")) for c in word)


def _draw(rng: random.Random) -> Example:
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(*LENGTHS)))
    return Example(word, rot13(word), tuple((i, i + 1) for i in range(len(word))))


@register("rot13", "a word -> its ROT13 (each letter 13 places on); the example plugin's task", aligned=True)
def make(opts: TaskOptions) -> TaskData:
    return unique_split("rot13", _draw, opts)
