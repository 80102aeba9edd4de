"""scripts/gpu_check.py runs end to end on the CPU with --small (same code paths as on a GPU)."""

import json

import pytest
from _helpers import load_script

pytest.importorskip("diffusers")


def test_gpu_check_small_on_cpu(tmp_path, capsys):
    gpu_check = load_script("gpu_check")
    assert gpu_check.main(["--small", "--device", "cpu", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    names = [r["solver"] for r in report["unet_timings"]]
    assert names[:-1] == gpu_check.SOLVERS and names[-1] == "diffusers DDIMScheduler"
    assert all(r["finite"] and r["ms_per_nfe"] > 0 for r in report["unet_timings"])
    ddim = report["unet_timings"][0]
    assert ddim["nfe"] == ddim["steps"]
    assert {"orders-gmm-2d-mlp", "norms-gmm-64d-mlp"} <= set(report["studies"])
    orders = report["studies"]["orders-gmm-2d-mlp"]["summary"]
    assert {r["solver"] for r in orders} == {"ddim", "s-pndm", "f-pndm", "fon"}
    assert "ms/NFE" in capsys.readouterr().out


def test_gpu_check_refuses_a_missing_gpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    gpu_check = load_script("gpu_check")
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
