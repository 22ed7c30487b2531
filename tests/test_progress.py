"""Progress while anything trains (issue 10): one line per run, updated per epoch, naming the run
(model, α, optimizer, epochs, run id) and giving epoch k/N, images/s and the ETA; and
``companion reproduce`` forwarding what a notebook's kernel prints to the terminal."""

from __future__ import annotations

import io
import json
import re

import nbformat
import pytest

from companion.book import reproduce as rp
from companion.config import TrainConfig
from companion.train.progress import EpochProgress, RunWatcher, format_duration
from companion.train.loop import train

TINY = TrainConfig(model="s-conv", alpha=2, epochs=2, dataset="synthetic", subset=128, val_size=64,
                   batch_size=64, device="cpu")
LINE = re.compile(r"s-conv α=2 sgd 2 ep \(run [0-9a-f]{12}\): epoch (\d)/2, [\d,]+ images/s, "
                  r"(ETA \d+:\d\d:\d\d|done in \d+:\d\d:\d\d)")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_format_duration():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(2 * 86400 + 61) == "2 days, 0:01:01"


def test_line_names_the_run_and_gives_epoch_speed_and_eta():
    clock, out = Clock(), io.StringIO()
    line = EpochProgress(TINY.replace(epochs=10), stream=out, clock=clock)
    clock.now = 6.0
    line.epoch(3, 1234.4)  # 2 s per epoch, 7 epochs left
    assert out.getvalue() == (f"s-conv α=2 sgd 10 ep (run {TINY.replace(epochs=10).run_id()}): "
                              "epoch 3/10, 1,234 images/s, ETA 0:00:14\n")
    clock.now = 20.0
    line.epoch(10, 1000.0)
    assert out.getvalue().splitlines()[-1].endswith("epoch 10/10, 1,000 images/s, done in 0:00:20")


def test_resumed_run_counts_its_eta_from_the_epochs_trained_now():
    clock, out = Clock(), io.StringIO()
    line = EpochProgress(TINY.replace(epochs=10), start=8, stream=out, clock=clock)
    clock.now = 5.0
    line.epoch(9, 10.0)
    first, second = out.getvalue().splitlines()
    assert "resuming after epoch 8/10" in first and second.endswith("ETA 0:00:05")


def test_on_a_terminal_the_line_is_rewritten_in_place():
    out = Tty()
    line = EpochProgress(TINY, stream=out, clock=Clock())
    line.epoch(1, 10.0)
    line.epoch(2, 10.0)
    text = out.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 1 and text.endswith("\n")
    line.close()  # already ended: nothing more
    assert out.getvalue() == text


def test_disabled_writes_nothing():
    out = io.StringIO()
    EpochProgress(TINY, stream=out, enabled=False).epoch(1, 10.0)
    assert out.getvalue() == ""


def test_training_prints_one_line_per_epoch(tmp_path, capsys):
    train(TINY, root=tmp_path, progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [m.group(1) for m in matches] == ["1", "2"]
    assert matches[0].group(2).startswith("ETA") and matches[1].group(2).startswith("done in")


def test_quiet_training_prints_nothing(tmp_path, capsys):
    train(TINY, root=tmp_path, progress=False)
    assert capsys.readouterr().err == ""


def test_watcher_reports_the_epochs_another_process_logged(tmp_path):
    out = io.StringIO()
    watcher = RunWatcher(TINY.replace(epochs=4), tmp_path, stream=out)
    watcher.poll()  # no metrics yet
    assert out.getvalue() == ""
    metrics = tmp_path / "metrics.jsonl"
    rows = [{"epoch": 1, "images_per_s": 500.0, "seconds": 3.0}, {"epoch": 2, "images_per_s": 700.0, "seconds": 5.0}]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "ima')  # a line being written
    watcher.poll()
    watcher.poll()  # unchanged: no second line
    assert out.getvalue().splitlines() == [
        f"s-conv α=2 sgd 4 ep (run {TINY.replace(epochs=4).run_id()}): epoch 2/4, 700 images/s, ETA 0:00:08"]


def _notebook(path, body):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "smoke"\nprogress = False\nroot = "runs"',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.slow
def test_reproduce_shows_a_notebooks_training_progress_on_the_terminal(tmp_path, capsys):
    pytest.importorskip("papermill", reason="papermill not installed")
    src, out = tmp_path / "notebooks", tmp_path / "book"
    src.mkdir()
    _notebook(src / "01_a.ipynb", "from companion.config import TrainConfig\n"
              "from companion.train.loop import train\n"
              f"train(TrainConfig.from_dict({TINY.to_dict()!r}), root=root, progress=progress)")
    [target] = rp.reproduce("smoke", notebooks=src, out=out, root=str(tmp_path / "runs"))
    err = capsys.readouterr()
    assert "[1/1] 01_a.ipynb: executing at profile smoke" in err.out
    # in the kernel the line is rewritten in place; forwarded as it is written
    epochs = [LINE.fullmatch(part.rstrip()) for part in err.err.replace("\n", "\r").split("\r") if part.strip()]
    assert [m.group(1) for m in epochs if m] == ["1", "2"], err.err
    # progress does not change the chapter: no re-execution without it
    before = target.read_bytes()
    rp.reproduce("smoke", notebooks=src, out=out, progress=False, root=str(tmp_path / "runs"))
    assert target.read_bytes() == before
