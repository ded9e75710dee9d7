"""bench/speed_table.py and ``compare.py --speed``: the table's ratios and goals from per-process medians, the
comparison of two saved tables (a drop fails, a small change passes), and the command lines.

Synthetic tables only: nothing is timed, and neither torch nor onnxruntime is needed.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if not (BENCH / "speed_table.py").is_file():
    pytest.skip("bench/ is not beside the tests (an installed copy of the tests)", allow_module_level=True)


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (a dataclass needs its module registered; compare.py imports this one)
    spec.loader.exec_module(module)
    return module


S = _load("speed_table")
C = _load("compare")

PEAK = 200e9
#: Per-process medians (seconds) of a run close to the issue's: {row: {contender: [...]}}.
MEDIANS = {
    "mlp32": {"fastnn": [0.0195, 0.0200, 0.0210], "torch": [0.170, 0.180, 0.175], "numpy": [0.24, 0.25, 0.245]},
    "mlp1024": {"fastnn": [0.020, 0.021], "torch": [0.030, 0.027]},
    "cnn32": {"fastnn": [0.70, 0.72], "torch": [2.4, 2.5]},
    "dropin": {"fastnn": [0.10], "numpy": [0.18]},
    "predict1": {"fastnn": [9e-6], "onnxruntime": [9.5e-6]},
}
FLOPS = {"mlp32": 3.0e9, "mlp1024": 3.0e9, "cnn32": 90e9}


def _table(path, medians=MEDIANS, started="2026-01-01T00:00:00", peak=PEAK):
    """A saved table as speed_table.py writes it (the parts compare.py reads), from per-process medians."""
    doc = {"kind": S.KIND, "started": started, "machine": {"cores": 2, "load_start": "0.1", "load_end": "0.2"},
           "peak": {"peak_flops": peak}, "rows": S.summarise(medians, peak, FLOPS)}
    path.write_text(json.dumps(doc))
    return path


def _slower(row, contender, factor):
    return {r: {c: [t * (factor if (r, c) == (row, contender) else 1) for t in ts] for c, ts in per.items()}
            for r, per in MEDIANS.items()}


def test_goals_cover_every_row_and_name_its_baselines():
    assert set(S.GOALS) == set(S.ROWS)
    for row, goals in S.GOALS.items():
        for key, goal in goals.items():
            assert key == "peak" and S.ROWS[row].basis or key in S.ROWS[row].baselines, (row, key)
            assert goal > 0
    assert S.GOALS["mlp32"] == {"torch": 8.0, "peak": 0.75}
    assert S.GOALS["predict1"] == {"onnxruntime": 1.0}


def test_rows_and_groups_expand_in_table_order():
    assert S.expand_rows(["predict", "mlp32"]) == ["mlp32", "predict1", "predict32", "predict1024"]
    assert S.expand_rows(["cnn"]) == ["cnn32", "cnn256"]
    with pytest.raises(ValueError, match="unknown row"):
        S.expand_rows(["gpu"])


def test_summary_gives_medians_ratios_fractions_and_goal_status():
    rows = S.summarise(MEDIANS, PEAK, FLOPS)
    mlp = rows["mlp32"]
    assert mlp["contenders"]["fastnn"]["median_s"] == 0.0200
    assert mlp["contenders"]["torch"]["spread"] == pytest.approx(0.180 / 0.170)
    assert mlp["ratios"] == {"torch": pytest.approx(0.175 / 0.02), "numpy": pytest.approx(0.245 / 0.02)}
    assert mlp["fraction_of_peak"] == pytest.approx(3.0e9 / 0.02 / PEAK)
    assert mlp["goals"]["torch"]["met"] is True and mlp["goals"]["peak"]["met"] is True
    assert rows["mlp1024"]["goals"]["torch"]["met"] is True  # 0.0285 / 0.0205 = 1.39x >= 1.3x
    assert rows["mlp1024"]["goals"]["peak"]["met"] is False  # 3 GFLOP in 20.5 ms at 200 GFLOP/s: 73% < 75%
    assert rows["dropin"]["fraction_of_peak"] is None and "peak" not in rows["dropin"]["goals"]
    assert rows["predict1"]["goals"]["onnxruntime"]["met"] is True
    ratios = S.table_ratios({"rows": rows})
    assert ratios[("mlp32", "torch")] == mlp["ratios"]["torch"]
    assert ratios[("cnn32", "peak")] == rows["cnn32"]["fraction_of_peak"]
    assert ("dropin", "peak") not in ratios


def test_a_missing_baseline_is_reported_not_measured():
    rows = S.summarise({"cnn256": {"fastnn": [1.0]}}, PEAK, {"cnn256": 90e9})
    assert rows["cnn256"]["ratios"] == {}
    assert rows["cnn256"]["goals"]["torch"] == {"goal": 2.0, "value": None, "met": None}


def test_compare_flags_a_drop_of_a_ratio(tmp_path, capsys):
    old = _table(tmp_path / "old.json")
    new = _table(tmp_path / "new.json", _slower("mlp32", "torch", 0.8), started="2026-01-02T00:00:00")
    assert C.main(["--speed", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "mlp32: torch / fastnn" in out and "DROP" in out
    assert "goals (issue 24)" in out


def test_compare_flags_a_drop_of_the_fraction_of_the_peak(tmp_path):
    old = _table(tmp_path / "old.json")
    new = _table(tmp_path / "new.json", _slower("cnn32", "fastnn", 1.25))  # every ratio of cnn32 drops too
    assert C.main(["--speed", str(old), str(new)]) == 1


def test_compare_passes_a_change_within_the_threshold(tmp_path, capsys):
    old = _table(tmp_path / "old.json")
    new = _table(tmp_path / "new.json", _slower("mlp32", "torch", 0.9))
    assert C.main(["--speed", str(old), str(new)]) == 0
    assert "no speed-table ratio dropped" in capsys.readouterr().out
    assert C.main(["--speed", str(old), str(new), "--threshold", "0.05"]) == 1


def test_compare_takes_the_two_latest_saved_tables_and_both_skips_what_is_missing(tmp_path, capsys):
    saved = tmp_path / "speed"
    saved.mkdir()
    _table(saved / "speed_b.json", _slower("mlp32", "torch", 0.5), started="2026-01-03T00:00:00")
    _table(saved / "speed_a.json", started="2026-01-02T00:00:00")
    _table(saved / "speed_0.json", _slower("mlp32", "torch", 0.1), started="2026-01-01T00:00:00")
    (saved / "other.json").write_text("{}")
    assert [Path(p).name for p in S.saved_tables(str(saved))] == ["speed_0.json", "speed_a.json", "speed_b.json"]
    assert C.main(["--speed", "--speed-dir", str(saved)]) == 1  # a -> b: the torch ratio halves
    # --both: no pytest-benchmark runs (noted), the speed tables still judged
    assert C.main(["--both", "--dir", str(tmp_path / "none"), "--speed-dir", str(saved)]) == 1
    assert C.main(["--both", "--dir", str(tmp_path / "none"), "--speed-dir", str(tmp_path / "none")]) == 2
    capsys.readouterr()


def test_compare_refuses_what_is_not_a_speed_table(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmarks": []}))
    assert C.main(["--speed", str(other), str(_table(tmp_path / "t.json"))]) == 2


@pytest.mark.parametrize("script", ["speed_table.py", "compare.py"])
def test_help_runs(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--speed" in proc.stdout if script == "compare.py" else "--rows" in proc.stdout
