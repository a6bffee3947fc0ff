"""An example s2sbench plugin: ``model`` registers ``gru``, ``task`` registers ``rot13``.

Installed, its entry points register both wherever s2sbench runs; not installed, the same files come in with
``s2sbench run --plugin examples/gru-plugin/s2sbench_gru/model.py --plugin examples/gru-plugin/s2sbench_gru/task.py``.
This module imports neither, so that each door loads exactly what it names.
"""
