"""Building blocks of the GRPO trainer: advantages, loss, prompts, checkpoints, logging, configuration."""
