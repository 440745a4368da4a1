import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "Models")
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def ckv_sim_path():
    path = os.environ.get("CKV_SIM", os.path.join(ROOT, ".build", "release", "ckv-sim"))
    if not os.path.isfile(path):
        pytest.fail(f"no ckv-sim binary at {path}: build it (swift build -c release --product ckv-sim) or set CKV_SIM")
    return path


def ckv_sim(*args, check=True):
    r = subprocess.run([ckv_sim_path(), *args], capture_output=True, text=True, cwd=ROOT)
    if check and r.returncode != 0:
        raise AssertionError(f"ckv-sim {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


@pytest.fixture(scope="session")
def smollm2():
    if not os.path.isfile(os.path.join(MODELS, SMOL)):
        pytest.fail(f"{SMOL} is not in {MODELS}: run scripts/setup.sh (scripts/install-models.sh)")
    from ckv_record.record import load_model
    import torch
    torch.set_num_threads(int(os.environ.get("CKV_RECORD_THREADS", "2")))
    return load_model(MODELS, SMOL, "cpu", "fp32")
