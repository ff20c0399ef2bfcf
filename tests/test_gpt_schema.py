"""Our GPT's state dict must equal LlamaGen's, key for key and shape for shape, for every released size."""

import json
from pathlib import Path

import pytest
import torch

from autoregressive.models.gpt import GPT_models, describe_state_dict, precompute_freqs_cis_2d

SCHEMA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "llamagen_state_dict_schema.json"
)


def _schema():
    if not SCHEMA.exists():
        pytest.skip(f"reference schema not found beside the checkout ({SCHEMA.name})")
    return json.loads(SCHEMA.read_text())


@pytest.mark.parametrize("size", ["GPT-B", "GPT-L", "GPT-XL", "GPT-XXL", "GPT-3B"])
@pytest.mark.parametrize("model_type", ["c2i", "t2i"])
def test_state_dict_matches_llamagen(size, model_type):
    entry = _schema()["gpt"]["models"][size][model_type]
    config = entry["config"]
    with torch.device("meta"):
        model = GPT_models[size](
            model_type=model_type,
            cls_token_num=config["cls_token_num"],
            num_classes=config["num_classes"],
            caption_dim=config["caption_dim"],
            vocab_size=config["vocab_size"],
        )
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {row["key"]: row["shape"] for row in entry["state_dict"]}
    assert ours == theirs
    assert len(ours) == entry["num_keys"]
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    assert params == entry["num_parameters"]
    assert buffers == entry["num_buffer_elements"]
    assert f"--gpt_model {size}" in describe_state_dict(model.state_dict())


@pytest.mark.parametrize("block_size,head_dim,cls", [(256, 64, 1), (576, 64, 1), (256, 100, 120)])
def test_rope_table_shape_and_layout(block_size, head_dim, cls):
    """Rows: condition positions are all-zero; image token (r, c) rotates pairs by r*f_k, then c*f_k."""
    grid = int(block_size**0.5)
    table = precompute_freqs_cis_2d(grid, head_dim, 10000, cls)
    half = head_dim // 2
    assert table.shape == (cls + block_size, half, 2)
    assert torch.count_nonzero(table[:cls]) == 0
    freqs = torch.tensor([10000 ** (-2 * j / half) for j in range(half // 2)], dtype=torch.float64)
    for r, c in [(0, 0), (3, 7), (grid - 1, 1)]:
        row = table[cls + r * grid + c].double()
        angles = torch.cat([r * freqs, c * freqs])
        torch.testing.assert_close(row[:, 0], angles.cos(), atol=1e-5, rtol=0)
        torch.testing.assert_close(row[:, 1], angles.sin(), atol=1e-5, rtol=0)


def test_schema_sizes_match_registry():
    schema = _schema()["gpt"]["models"]
    for size, entry in schema.items():
        hp = entry["hyperparameters"]
        with torch.device("meta"):
            cfg = GPT_models[size]().config
        assert (cfg.dim, cfg.n_layer, cfg.n_head, cfg.head_dim, cfg.ffn_hidden_dim) == (
            hp["dim"],
            hp["n_layer"],
            hp["n_head"],
            hp["head_dim"],
            hp["ffn_hidden_dim"],
        )


def test_every_model_arg_is_read():
    """A ``ModelArgs`` field that no model code reads is a dead option: setting it would silently do nothing."""
    import ast
    from dataclasses import fields

    from autoregressive.models.gpt import ModelArgs

    package = Path(__file__).resolve().parents[1] / "autoregressive"
    read = {
        node.attr
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
    }
    assert sorted(f.name for f in fields(ModelArgs) if f.name not in read) == []


def test_a_registered_size_takes_overrides_of_its_own_dimensions():
    """``--gpt_config '{"dim": 64}'`` on a named size overrides it instead of failing on a duplicate keyword."""
    from autoregressive.models.gpt import build_gpt

    model = build_gpt("GPT-B", dim=64, n_layer=1, n_head=2, block_size=4, vocab_size=8)
    assert model.tok_embeddings.weight.shape == (8, 64) and len(model.layers) == 1
