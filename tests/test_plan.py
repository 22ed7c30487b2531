"""The per-chapter plan: runs, finished/missing, training time, provenance, GPU-hour estimate."""

import nbformat

from companion.book import chapters, plan
from companion.experiments import profiles, runs
from companion.config import TrainConfig
from companion.experiments.cost import Throughput
from companion.experiments.study import Study
from companion.book.reproduce import dry_run
from companion.train.loop import train


def test_chapter_plan_counts_finished_and_missing(tmp_path):
    done = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64, subset=128, val_size=64)
    missing = done.replace(epochs=2)
    train(done, root=tmp_path, progress=False)
    study = Study(profiles.get("smoke"), tmp_path)
    table = plan.chapter_plan(study, {"a": [done, missing, done], "b": []}, throughput=Throughput(1e12, "test"))
    a = table.set_index("chapter").loc["a"]
    assert (a["runs"], a["finished"], a["missing"]) == (2, 1, 1)
    assert a["train_hours"] > 0 and a["gpu_hours_estimate"] > 0
    assert a["data"].startswith("synthetic: 128/64/") and "/tmp" not in a["data"]  # no machine path
    assert table.set_index("chapter").loc["b", "runs"] == 0
    assert "companion reproduce --profile paper --only 04_table2" in plan.rerun_commands("04_table2", "paper")


def test_paper_dry_run_lists_every_chapter_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path))
    text = dry_run("paper")
    p = profiles.get("paper")
    for chapter in chapters.chapter_configs(Study(p, tmp_path / "paper")):
        assert chapter in text
    assert "GPU-h" in text and "lower bound" in text
    assert not any(tmp_path.iterdir())  # planning trains nothing


def _source(path, title):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n\ntext")]), path)


def _executed(path, profile, seconds):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": seconds}
    nb.metadata["companion"] = {"parameters": {"profile": profile}}
    nbformat.write(nb, path)


def test_executed_chapters_skips_copies_being_executed(tmp_path):
    _executed(tmp_path / "02_table1.ipynb", "smoke", 12.5)
    (tmp_path / ".03_scaling.tmp.ipynb").write_text("{")  # half written
    (tmp_path / "04_table2.ipynb").write_text("not json")
    table = plan.executed_chapters(tmp_path)
    assert table["chapter"].tolist() == ["02_table1"] and table["execution_s"].tolist() == [12.5]


def test_reproducibility_tables_per_chapter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    src, book = tmp_path / "notebooks", tmp_path / "book"
    src.mkdir(), book.mkdir()
    for name, title in (("01_parameters", "Parameter counts"), ("02_table1", "Table 1: depth"),
                        ("03_scaling", "Scaling"), (plan.THIS_PAGE, "Reproducibility")):
        _source(src / f"{name}.ipynb", title)
    _source(src / f".{plan.THIS_PAGE}.tmp.ipynb", "being executed")
    _executed(book / "02_table1.ipynb", "smoke", 65)
    _executed(book / "03_scaling.ipynb", "cpu", 30)  # another profile's copy
    _executed(book / f"{plan.THIS_PAGE}.ipynb", "smoke", 1)  # last build's copy of this page
    p = profiles.get("smoke")
    build, rerun = plan.reproducibility_tables(Study(p, tmp_path / "results"), throughput=Throughput(1e12, "test"))
    build, rerun = build.set_index("chapter"), rerun.set_index("chapter")
    assert build.index.tolist() == ["Parameter counts", "Table 1: depth", "Scaling", "Reproducibility"]
    assert build.loc["Table 1: depth", "execution time"] == "0:01:05"
    assert build.loc["Scaling", "execution time"] == "not executed at smoke"
    assert build.loc["Reproducibility", "execution time"].startswith("this page")
    assert build.loc["Table 1: depth", "runs"] == len(runs.table1_configs(p))
    assert build.loc["Table 1: depth", "finished"] == 0 and build.loc["Table 1: depth", "devices"] == "–"
    assert rerun.loc["Table 1: depth", "rerun at cpu"] == (
        "`companion experiments --profile cpu && companion reproduce --profile cpu --only 02_table1`")
    assert rerun.loc["Parameter counts", "rerun at paper"] == "`companion reproduce --profile paper --only 01_parameters`"
    assert rerun.loc["Table 1: depth", "paper runs"] == len(runs.table1_configs(profiles.get("paper")))
    assert float(rerun.loc["Table 1: depth", "paper GPU-hours (est.)"].replace(",", "")) > 0
    assert rerun.loc["Reproducibility", "paper runs"] == 0
