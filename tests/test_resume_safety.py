"""Resuming never runs code from a checkpoint folder, and broken files are errors that name the file."""

import json
import shutil

import pytest
import torch

from autoregressive.checkpoint import CheckpointError
from grpo.checkpointing import LEGACY_FILES, MODEL_FILE, OPTIMIZER_FILE, RNG_FILE, SCHEDULER_FILE, STATE_FILE
from tests.grpo_fixtures import flat_params, make_trainer
from tests.payloads import write_payload


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run stopped at step 2 (checkpoint-2), and the parameters of the same run straight to step 3."""
    root = tmp_path_factory.mktemp("runs")
    make_trainer(root / "split", max_steps=3, exit_step=2).train()
    straight = make_trainer(root / "straight", max_steps=3)
    straight.train()
    return root / "split", flat_params(straight)


@pytest.fixture()
def run_copy(saved_run, tmp_path):
    folder, _ = saved_run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    return copy


def _resume(run):
    return make_trainer(run, max_steps=3, resume_from_checkpoint="latest")


def test_pickle_files_in_a_checkpoint_are_never_unpickled(saved_run, run_copy, tmp_path):
    # accelerate's save_state wrote these names, and load_state unpickled them with full pickle.
    marker = tmp_path / "code_ran"
    for name in LEGACY_FILES + ("pytorch_model.bin", "random_states_1.pkl", "custom_checkpoint_1.pkl"):
        write_payload(run_copy / "checkpoint-2" / name, marker)
    trainer = _resume(run_copy)
    trainer.train()
    assert not marker.exists(), "resuming unpickled a file from the checkpoint folder"
    assert torch.equal(flat_params(trainer), saved_run[1])  # still bit-exact


def test_a_checkpoint_in_the_old_pickle_layout_is_refused(run_copy, tmp_path):
    marker = tmp_path / "code_ran"
    checkpoint = run_copy / "checkpoint-2"
    (checkpoint / OPTIMIZER_FILE).unlink()
    for name in LEGACY_FILES:
        write_payload(checkpoint / name, marker)
    with pytest.raises(CheckpointError, match="refused") as info:
        _resume(run_copy).train()
    assert str(checkpoint) in str(info.value) and "--gpt_ckpt" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", [OPTIMIZER_FILE, MODEL_FILE])
def test_a_payload_in_place_of_a_checkpoint_file_is_refused(run_copy, tmp_path, name):
    marker = tmp_path / "code_ran"
    write_payload(run_copy / "checkpoint-2" / name, marker)
    with pytest.raises(CheckpointError) as info:
        _resume(run_copy).train()
    assert str(run_copy / "checkpoint-2" / name) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", [MODEL_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, STATE_FILE, RNG_FILE.format(rank=0)])
def test_a_truncated_checkpoint_file_is_an_error_naming_it(run_copy, name):
    path = run_copy / "checkpoint-2" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        _resume(run_copy).train()
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "garbled",
    [
        '{"python": [3, [1, 2, 3], null], "numpy": [], "torch": ""}',  # valid JSON, wrong sizes
        '{"python": "x"}',
        "[1, 2]",
        "\x00\x01 garbage",
    ],
)
def test_a_garbled_rng_state_is_an_error_naming_the_file(run_copy, garbled):
    path = run_copy / "checkpoint-2" / RNG_FILE.format(rank=0)
    path.write_text(garbled)
    with pytest.raises(CheckpointError, match="RNG state|corrupt") as info:
        _resume(run_copy).train()
    assert str(path) in str(info.value)


def test_torch_rng_state_of_the_wrong_size_is_refused(run_copy):
    path = run_copy / "checkpoint-2" / RNG_FILE.format(rank=0)
    states = json.loads(path.read_text())
    states["torch"] = states["torch"][: len(states["torch"]) // 2]
    path.write_text(json.dumps(states))
    with pytest.raises(CheckpointError, match="RNG state") as info:
        _resume(run_copy).train()
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        lambda state: state.update(optimizer="not an optimizer"),  # would be copied into the scheduler's __dict__
        lambda state: state.update(base_lrs=["0.1"]),
        lambda state: state.update(last_epoch=[1] * 10),
        lambda state: state.pop("last_epoch"),
    ],
)
def test_a_scheduler_state_unlike_ours_is_refused(run_copy, change):
    path = run_copy / "checkpoint-2" / SCHEDULER_FILE
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="unexpected state") as info:
        _resume(run_copy).train()
    assert str(path) in str(info.value)


@pytest.mark.parametrize("change", [{"step": "2"}, {"rollout_index": -1}, {"step": 2.5}])
def test_a_trainer_state_with_bad_counters_is_refused(run_copy, change):
    path = run_copy / "checkpoint-2" / STATE_FILE
    state = json.loads(path.read_text())
    state.update(change)
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="non-negative integer") as info:
        _resume(run_copy).train()
    assert str(path) in str(info.value)


def test_an_optimizer_state_of_the_wrong_shapes_is_refused(run_copy):
    path = run_copy / "checkpoint-2" / OPTIMIZER_FILE
    state = torch.load(path, weights_only=True)
    first = next(iter(state["state"].values()))
    first["exp_avg"] = first["exp_avg"].flatten()[:3].clone()
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="exp_avg") as info:
        _resume(run_copy).train()
    assert str(path) in str(info.value)


def test_resuming_with_another_process_count_names_the_missing_rng_state(run_copy):
    (run_copy / "checkpoint-2" / RNG_FILE.format(rank=0)).unlink()
    state_path = run_copy / "checkpoint-2" / STATE_FILE
    state = json.loads(state_path.read_text())
    state["num_processes"] = 2
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="saved by 2 process") as info:
        _resume(run_copy).train()
    assert "rng_state_0.json" in str(info.value)
