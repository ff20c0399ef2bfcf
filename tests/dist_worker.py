"""One GRPO step from a torchrun-launched process (gloo on CPU); rank 0 saves the resulting parameters."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grpo.launch import end_run, make_accelerator  # noqa: E402
from tests.grpo_fixtures import flat_params, make_trainer  # noqa: E402


def main(output_dir: str, per_device: int, steps: int, exit_step: int = -1, resume: str | None = None) -> None:
    torch.set_num_threads(1)
    accelerator = make_accelerator()  # what the training scripts use: no cpu=True by hand
    trainer = make_trainer(
        output_dir,
        accelerator=accelerator,
        max_steps=steps,
        per_device_train_batch_size=per_device,
        beta=0.05,
        learning_rate=1e-2,
        adam_epsilon=1e-4,
        exit_step=exit_step,
        resume_from_checkpoint=resume,
    )
    start = flat_params(trainer)
    trainer.train()
    if accelerator.is_main_process:
        torch.save(start, Path(output_dir) / "params_start.pt")
        torch.save(flat_params(trainer), Path(output_dir) / "params.pt")
    end_run(accelerator)  # as the training scripts end


if __name__ == "__main__":
    extra = sys.argv[4:]
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(extra[0]) if extra else -1, *extra[1:])
