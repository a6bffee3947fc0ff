"""Regression tracking: two sessions, or a session and a committed baseline, judged figure by figure.

``thresholds`` reads ``--fail-on``; ``sides`` turns a stored session or a baseline file (its format is
``bench.results.baseline``'s) into groups of per-seed values; ``pairing`` decides which groups are compared;
``verdicts`` is the maths of better / same / worse; ``compare`` assembles one comparison and renders it;
``bisect`` runs ``git bisect`` with compare's verdict as its predicate. Reads ``bench.results``, uses
``bench.analysis``; no torch.
"""
