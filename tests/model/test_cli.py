"""The CLI contract: `python -m mmu_model` as other tools and reviewers script it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmu_model.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_scenarios_lists_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    """`scenarios --json` names the five built-ins the issue requires (and the big ones)."""
    code, out, _ = run_cli(capsys, "scenarios", "--json")
    names = {s["name"] for s in json.loads(out)}
    assert code == 0
    assert {"seed-bottom-up", "seed-top-down", "boot-loop-bottom-up", "boot-loop-top-down",
            "teaching-small"} <= names


def test_simulate_json_has_the_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """simulate --json prints stats, orphans, events, fixes and per_boot for every boot."""
    code, out, _ = run_cli(capsys, "simulate", "--scenario", "boot-loop-bottom-up",
                           "--boots", "3", "--l2-mem-gib", "2", "--json")
    result = json.loads(out)
    assert code == 0
    for stat in ("mmu_shadow_pages", "mmu_unsync", "mmu_shadow_zapped", "mmu_pte_write",
                 "mmu_pde_zapped", "mmu_flooded", "mmu_recycled", "mmu_cache_miss",
                 "pages_4k"):
        assert stat in result["stats"]
    assert set(result["orphans"]) == {"total", "unsync", "by_level", "unreachable",
                                      "unreachable_unsync"}
    # Every orphan is unreachable, and so is everything below one (OrphanSummary).
    assert result["orphans"]["unreachable"] >= result["orphans"]["total"]
    assert result["orphans"]["unreachable_unsync"] >= result["orphans"]["unsync"]
    assert result["events"] > 0
    assert result["fixes"] == ["unlink-children-zap", "flood-detection"]
    assert [b["boot"] for b in result["per_boot"]] == [1, 2, 3]
    assert {"shadow_pages", "unsync", "orphans", "rmap_entries", "hash_walked"} <= set(
        result["per_boot"][0])


def test_simulate_orphans_match_the_mechanism(capsys: pytest.CaptureFixture[str]) -> None:
    """2 GiB, 3 PTs per PD, 2 root zaps per boot, 3 boots, bottom-up: each PD's first two
    trapped PDE writes orphan one unsync PT each before the third flood-zaps the PD, so
    2 orphans x 2 PDs x 2 zaps x 3 boots = 24 unsync orphans (none rediscovered: the random
    table allocator draws from ~1.5 M free L1 pages)."""
    _, out, _ = run_cli(capsys, "simulate", "--boots", "3", "--l2-mem-gib", "2",
                        "--pdes-per-pd", "3", "--json")
    result = json.loads(out)
    assert result["orphans"]["unsync"] == 24
    assert [b["orphans_unsync"] for b in result["per_boot"]] == [8, 16, 24]


def test_simulate_with_the_fix_leaks_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """--fix track-write-zap zaps each child as its last parent SPTE goes: 0 orphans."""
    _, out, _ = run_cli(capsys, "simulate", "--boots", "3", "--l2-mem-gib", "2",
                        "--fix", "track-write-zap", "--json")
    result = json.loads(out)
    assert result["orphans"]["total"] == 0
    assert "track-write-zap" in result["fixes"]


def test_replay_json_lists_discrepancies(capsys: pytest.CaptureFixture[str]) -> None:
    """The bottom-up seed trace: PD 0x160be7's two writes carry trace flood 1 and 2 while
    the model's fresh shadow page counts 0 and 1, so exactly those two lines differ."""
    code, out, _ = run_cli(capsys, "replay", str(FIXTURES / "seed-bottom-up.trace"), "--json")
    result = json.loads(out)
    assert code == 0
    assert [(d["gfn"], d["trace_flood"], d["model_flood"]) for d in result["discrepancies"]] == [
        ("0x160be7", 1, 0), ("0x160be7", 2, 1)]
    assert any("never shows the parent" in note for note in result["notes"])


def test_replay_human_output_is_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json the replay prints a stat table and the orphan line."""
    code, out, _ = run_cli(capsys, "replay", str(FIXTURES / "seed-top-down.trace"))
    assert code == 0
    assert "mmu_shadow_pages" in out
    assert "orphans: 5 (4 unsync" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["simulate", "--l2-mem-gib", "x"], "l2_mem_gib"),
        (["simulate", "--l2-mem-gib", "0"], "l2_mem_gib"),
        (["simulate", "--order", "sideways"], "order"),
        (["simulate", "--fix", "bogus"], "bogus"),
        (["simulate", "--no-fix", "nope"], "nope"),
        (["simulate", "--scenario", "nope"], "nope"),
        (["simulate", "--scenario", "seed-top-down", "--boots", "2"], "--boots"),
        (["replay", "/nonexistent/trace"], "cannot read"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    """Bad arguments: exit status 2 and a single stderr line naming what is wrong."""
    code, _out, err = run_cli(capsys, *args)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_malformed_trace_names_the_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed record fails with its line number; --lenient skips it with a warning."""
    trace = tmp_path / "t.trace"
    good = (FIXTURES / "seed-top-down.trace").read_text().splitlines()
    trace.write_text("\n".join([*good[:3], "gpa = zz, old = 1", *good[3:]]) + "\n")
    code, _, err = run_cli(capsys, "replay", str(trace))
    assert code == 2
    assert "line 4" in err
    code, out, _ = run_cli(capsys, "replay", str(trace), "--lenient")
    assert code == 0
    assert "warning: line 4 skipped" in out


def test_module_entry_point_runs() -> None:
    """`python -m mmu_model` works as a real process and exits 2 on bad input."""
    ok = subprocess.run([sys.executable, "-m", "mmu_model", "scenarios"],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0
    assert "teaching-small" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "mmu_model", "simulate", "--boots", "-1"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "boots" in bad.stderr
