"""A campaign carried from one machine to another (experiments/campaign.py --carry, --restore): the run
goes on from the carried checkpoint bit-identically, the parameter copies left behind are forgotten
and named, and a run the new machine already has is left alone."""
import os
import sys

import numpy as np

import fft_analysis
import miiii
import rundir
from run_files import cli_args, main_stopped_at

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
import campaign  # noqa: E402

# analysis on: the run writes progress copies and record segments
TINY = {**miiii.DEFAULTS, "task": "nanda", "p": 11, "d": 8, "heads": 2, "epochs": 60, "log_every": 10}
NAME = "paper-nanda-s0"  # carry and restore take the campaign's run names; the config is TINY's


def copy_epochs(run_dir):
    return sorted(int(f[:-len(".npz")]) for f in os.listdir(os.path.join(run_dir, "progress_params")))


def test_a_carried_run_goes_on_bit_identically_without_its_parameter_copies(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    assert miiii.main(cli_args(TINY, "--quiet", "--out", whole)) == 0
    old = tmp_path / "old"  # the machine that is not kept
    main_stopped_at(cli_args(TINY, "--quiet", "--out", old / "runs" / NAME), 35, monkeypatch)
    left_behind = copy_epochs(old / "runs" / NAME)
    assert left_behind == [e for e in copy_epochs(whole) if e < 36] and len(left_behind) > 5

    state = tmp_path / "state"  # results/campaign_state/ in the repository
    assert campaign.carry(str(old), str(state)) == {NAME: 36}  # SIGTERM in the step of 35: checkpoint at 36
    carried = sorted(str(p.relative_to(state / NAME)) for p in (state / NAME).rglob("*") if p.is_file())
    assert rundir.CHECKPOINT in carried and rundir.CONFIG in carried and rundir.WALL not in carried  # no runner
    assert all(f.startswith(rundir.SEGMENTS + os.sep) for f in carried if f not in (rundir.CHECKPOINT, rundir.CONFIG))
    assert len(carried) > 2  # the record segments came along
    assert rundir.load_json(state / campaign.STATE)["runs"] == {NAME: 36}

    new = tmp_path / "new"  # the next machine: nothing of `old` but what was carried
    assert campaign.restore(str(new), str(state)) == [NAME]
    run = new / "runs" / NAME
    (entry,) = campaign.restores(run)
    assert entry["epoch"] == 36 and entry["copies_lost"] == {"progress": left_behind}
    (line,) = campaign.carried_lines(str(new / "runs"))
    assert f"carried at epoch 36" in line and f"progress of {len(left_behind)} epochs (0..{left_behind[-1]})" in line
    assert miiii.main(["--resume", str(run), "--quiet"]) == 0

    for name in (rundir.PARAMS, rundir.METRICS, *rundir.SERIES.values()):  # the same training, the same records
        a, b = rundir.load_npz(str(whole / name)), rundir.load_npz(str(run / name))
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), name
    # the copies after the carry are written as usual; the lost ones stay lost
    assert copy_epochs(run) == [e for e in copy_epochs(whole) if e >= 36] != []
    assert rundir.load_json(run / rundir.CONFIG)["status"] == "complete"
    # the runner's next step on a finished run: its analysis, progress measures from the copies it has
    assert fft_analysis.main([str(run)]) == 0
    assert rundir.load_npz(str(run / rundir.PROGRESS))["epochs"].tolist() == copy_epochs(run)

    assert campaign.restore(str(new), str(state)) == []  # the new machine has the run now: left alone
    assert len(campaign.restores(run)) == 1


def test_carry_drops_a_finished_run_and_restore_without_a_state_does_nothing(tmp_path):
    state = tmp_path / "state"
    (state / "paper-miiii-s0").mkdir(parents=True)  # carried once, finished since
    done = tmp_path / "camp" / "runs" / NAME
    assert miiii.main(cli_args({**TINY, "epochs": 5}, "--quiet", "--no-analysis", "--out", done)) == 0
    assert campaign.carry(str(tmp_path / "camp"), str(state)) == {}
    assert sorted(os.listdir(state)) == [campaign.STATE]
    assert campaign.restore(str(tmp_path / "other"), str(tmp_path / "nothing")) == []


def test_a_damaged_carried_state_is_one_line_and_nothing_restored(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(campaign, "ROOT", str(tmp_path))  # the repository whose results/campaign_state/ is read
    state = tmp_path / campaign.STATE_DIR
    state.mkdir(parents=True)
    (state / campaign.STATE).write_text('{"code_commit": "abc", "runs": {"paper-miiii-s0"')  # cut short
    assert campaign.main([str(tmp_path / "camp"), "--restore"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state.json: damaged" in err
    assert os.listdir(tmp_path / "camp" / "runs") == []


def test_a_campaign_on_other_code_gets_nothing_carried(tmp_path, capsys):
    state = tmp_path / "state"
    (state / NAME).mkdir(parents=True)
    rundir.save_json(str(state / campaign.STATE), {"code_commit": "0" * 40, "runs": {NAME: 36}})
    assert campaign.restore(str(tmp_path / "camp"), str(state)) == []  # its code (none here) is not 000...
    assert "not at the carried commit" in capsys.readouterr().err
    assert not (tmp_path / "camp" / "runs" / NAME).exists()
