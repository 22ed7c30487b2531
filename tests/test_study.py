"""The Study: one results store at one profile, each finished run read once and each choice on
validation made once; missing runs give the one error that lists them with the command."""

import json
from collections import Counter
from pathlib import Path

import pytest

from companion.book import chapters, length_tables, protocol, summary, tables
from companion.experiments import lengths, runs, search, study as study_module
from companion.experiments.profiles import get
from companion.experiments.study import Study
from companion.store.results import CONFIG, SUMMARY, write_json

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "results" / "smoke"


def _finish(config, root: Path, val_acc: float) -> None:
    """A finished run of ``config`` in ``root`` without training: its config and a summary."""
    folder = root / config.run_id()
    folder.mkdir(parents=True)
    write_json(folder / CONFIG, config.to_dict())
    write_json(folder / SUMMARY, {"final_train_acc": 0.9, "final_val_acc": val_acc, "final_test_acc": 0.5,
                                  "total_nonzeros": 10, "total_weights": 20, "wall_time_s": 1.0})


def test_a_study_resolves_its_store_once():
    p = get("smoke")
    assert Study(p, "/some/store").root == Path("/some/store")
    assert Study(p).root == runs.results_dir(p)
    assert repr(Study(p, "/some/store")) == "Study('smoke', '/some/store')"


def test_missing_runs_are_one_error_listing_them_with_the_command(tmp_path):
    p = get("smoke")
    study = Study(p, tmp_path)
    configs = runs.search_configs(p)
    with pytest.raises(runs.MissingRunsError) as missing:
        study.finished(configs + configs[:1])  # a config asked for twice is listed once
    lines = [f"  {c.model} α={c.alpha} {c.optimizer} {c.epochs} ep (run {c.run_id()})" for c in configs]
    assert str(missing.value) == (f"{len(configs)} run(s) are not finished in {tmp_path}:\n" + "\n".join(lines)
                                  + "\ntrain them with `companion experiments --profile smoke`")
    with pytest.raises(runs.MissingRunsError, match="companion experiments --profile smoke"):
        study.lasso_search  # a choice that needs them raises the same error
    with pytest.raises(runs.MissingRunsError):
        study.candidates(max(p.longer_epochs))


def test_a_run_missing_once_is_found_once_finished_and_the_choice_made_then(tmp_path):
    p = get("smoke")
    study = Study(p, tmp_path)
    configs = runs.search_configs(p)
    with pytest.raises(runs.MissingRunsError):
        study.lasso_selection
    for i, config in enumerate(configs):  # the search finishes after the study was built
        _finish(config, tmp_path, val_acc=0.1 + 0.01 * i)
    best = configs[-1]
    assert study.lasso_selection["best"] == {"beta": best.beta, "lam": best.lam, "lam_first": best.lam_first}
    assert study.find(configs[0]).run_id == configs[0].run_id()


def test_each_run_is_read_once_and_each_choice_made_once(monkeypatch):
    if not SMOKE.is_dir():
        pytest.skip("no committed smoke results")
    reads, selections = Counter(), Counter()
    find_run, selection = study_module.find_run, search.selection

    def counting_find(config, root):
        run = find_run(config, root)
        reads[(config.run_id(), run is not None)] += 1
        return run

    def counting_selection(frame):
        selections["lasso"] += 1
        return selection(frame)

    monkeypatch.setattr(study_module, "find_run", counting_find)
    monkeypatch.setattr(search, "selection", counting_selection)
    study = Study(get("smoke"), SMOKE)
    claims = summary.claims(study)  # Tables 1, 2, seeds, Figures 2 and 5, and the longer lengths
    assert len(claims) > 7
    tables.table2(study), tables.permutation(study), protocol.seed_runs(study), protocol.settling(study)
    length_tables.length_runs(study, partial=True), lengths.pending_runs(study), chapters.chapter_configs(study)
    found = {run_id: n for (run_id, finished), n in reads.items() if finished}
    assert found and max(found.values()) == 1, "a finished run was read from the store twice"
    assert selections["lasso"] == 1
    assert study.lasso_search is study.lasso_search and study.choices is study.choices
    assert study.table2_configs is study.table2_configs
    epochs = max(study.profile.longer_epochs)
    assert study.candidates(epochs) is study.candidates(epochs) and study.chosen(epochs) is study.chosen(epochs)


def test_the_marked_search_is_a_copy():
    if not SMOKE.is_dir():
        pytest.skip("no committed smoke results")
    study = Study(get("smoke"), SMOKE)
    marked = search.lasso_choices(study.lasso_search)
    assert marked["chosen"].sum() == 1 and "chosen" not in study.lasso_search


def test_every_chapter_that_reads_runs_builds_one_study():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if "results_dir" in code:
            assert code.count("Study(") == 1, f"{path.name} builds {code.count('Study(')} studies"
            assert ", root" not in code and "(P, root" not in code, path.name
