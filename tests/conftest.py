"""Test-wide settings: never touch a model hub, keep CPU threads modest, and make torch deterministic."""

import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

# One thread by default: the tiny test models are overhead-bound and OpenMP threads competing with another busy
# process slow them down (docs/environment.md). CI, alone on the machine, may raise it.
torch.set_num_threads(int(os.environ.get("AR_GRPO_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture
def fresh_dynamo():
    """Compiled-code tests start and end with dynamo's caches and counters empty (graph counts are exact)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="session")
def clean_t2i():
    """The demo's evaluator and rewards on clean images: 300 prompts (50 per tag) x 4 scenes, 1200 images."""
    from demo.dataset import build_t2i

    return build_t2i(num_prompts=300, images_per_prompt=4, seed=123)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """One demo output root per test session, so the demo's pretrained models are built once and shared."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny c2i/t2i GPT and VQ-Tiny checkpoints for the evaluation-script tests (tests/eval_models.py)."""
    from tests.eval_models import write_models

    return write_models(tmp_path_factory.mktemp("models"))
