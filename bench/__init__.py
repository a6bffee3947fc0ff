"""s2sbench: trains, times and scores seq2seq architectures side by side (the harness; networks live in ``models``)."""

__version__ = "0.1.0"
