"""The progress bar: one line per finished step in a log, the step under way named on a terminal."""

from __future__ import annotations

import io

from edgeseg.progress import Progress


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as sys.stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def test_a_log_gets_each_step_once():
    log = io.StringIO()
    progress = Progress(3, "calibrate", stream=log)
    progress.begin("INT8 Q/DQ for TensorRT")  # nothing in a log: the step is written when done
    progress.advance("INT8 Q/DQ for TensorRT")
    for _ in range(5):  # the CPU search notes its state after each level, often unchanged
        progress.advance("CPU INT8: 0 nodes left in float", steps=0)
    progress.advance("INT8 for the CPU")
    progress.advance("manifest updated")
    progress.advance("manifest updated")  # past the end: the last line is not repeated
    lines = log.getvalue().splitlines()
    assert [line.split("s ", 1)[1] for line in lines] == [
        "INT8 Q/DQ for TensorRT",
        "CPU INT8: 0 nodes left in float",
        "INT8 for the CPU",
        "manifest updated",
    ]
    assert [line.split("] ")[1].split()[0] for line in lines] == ["1/3", "1/3", "2/3", "3/3"]


def test_a_terminal_names_the_step_in_progress():
    terminal = Terminal()
    progress = Progress(2, "calibrate", stream=terminal)
    progress.advance("frames read")
    progress.begin("INT8 Q/DQ for TensorRT")  # a step of a minute: the bar says so while it runs
    shown = terminal.getvalue().split("\r")[-1]
    assert "1/2" in shown and "INT8 Q/DQ for TensorRT..." in shown and "frames read" not in shown
    progress.advance("INT8 Q/DQ for TensorRT")
    assert terminal.getvalue().endswith("\n") and terminal.getvalue().count("\n") == 1
    progress.begin("after the end")
    progress.advance("after the end")
    assert "after the end" not in terminal.getvalue()
