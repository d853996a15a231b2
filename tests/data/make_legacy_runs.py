"""Make tests/data/legacy-finished and tests/data/legacy-interrupted with the code of commit cc8e527.

    git archive cc8e527 | tar -x -C /tmp/old && python tests/data/make_legacy_runs.py /tmp/old

Run directories in the layout of that code: every analysis record inside checkpoint.npz, and at the end
in omega.npz, omega_talk.npz, grad_norms.npz and one progress_params.npz. T_miiii at p 11, d 8, 2 heads,
40 epochs, one BLAS thread. legacy-finished: the whole run, then `fft_analysis.py` on it (analysis.json,
progress.npz). legacy-interrupted: the same run stopped by a real SIGTERM during the step of epoch 25
(the checkpoint is at epoch 26; config.json says "running", as that code left it). The tests read,
resume and extend them with today's code (tests/test_legacy.py). This script needs the old code: today's
miiii.py writes the new layout.
"""
import os
import shutil
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = ["--task", "miiii", "--p", "11", "--d", "8", "--heads", "2", "--epochs", "40", "--threads", "1",
         "--quiet"]


def main(old_code):
    sys.path.insert(0, os.path.abspath(old_code))
    import fft_analysis
    import miiii
    finished, interrupted = os.path.join(HERE, "legacy-finished"), os.path.join(HERE, "legacy-interrupted")
    for d in (finished, interrupted):
        shutil.rmtree(d, ignore_errors=True)
    assert miiii.main(FLAGS + ["--out", finished]) == 0
    assert fft_analysis.main([finished]) == 0
    real, calls = miiii.loss_and_grads, {"n": 0}

    def step(*args, **kwargs):  # a SIGTERM arrives during the step of epoch 25
        if calls["n"] == 25:
            os.kill(os.getpid(), signal.SIGTERM)
        calls["n"] += 1
        return real(*args, **kwargs)

    miiii.loss_and_grads = step
    assert miiii.main(FLAGS + ["--checkpoint-every", "10", "--out", interrupted]) == 128 + signal.SIGTERM
    assert sorted(os.listdir(interrupted)) == ["checkpoint.npz", "config.json"]


if __name__ == "__main__":
    main(sys.argv[1])
