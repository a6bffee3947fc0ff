"""The plugin's own tests: its model and its task held to s2sbench's contract, as check-model and check-task do."""

from bench.train.contract import assert_model, assert_task


def test_gru_keeps_the_model_contract() -> None:
    assert_model("gru")


def test_rot13_keeps_the_task_contract() -> None:
    assert_task("rot13")
