"""The GRPO objective and advantages against hand computations."""

import math

import pytest
import torch

from grpo.advantages import group_advantages, in_group_diversity
from grpo.loss import grpo_loss


def test_loss_matches_hand_computation_with_clipping_and_kl():
    logp = torch.tensor([[math.log(0.5), math.log(0.2)], [math.log(0.3), math.log(0.4)]])
    old = torch.tensor([[math.log(0.25), math.log(0.2)], [math.log(0.6), math.log(0.4)]])
    ref = torch.tensor([[math.log(0.4), math.log(0.1)], [math.log(0.3), math.log(0.5)]])
    adv = torch.tensor([1.0, -2.0])
    out = grpo_loss(logp, old, adv, ref_logp=ref, beta=0.1, epsilon_low=0.2, epsilon_high=0.3)
    # ratios: [2.0, 1.0], [0.5, 1.0]; clipped into [0.8, 1.3]
    pg = [[-min(2.0 * 1, 1.3 * 1), -1.0], [-min(0.5 * -2, 0.8 * -2), 2.0]]

    def k3(r, p):
        return r / p - math.log(r / p) - 1

    kl = [[k3(0.4, 0.5), k3(0.1, 0.2)], [k3(0.3, 0.3), k3(0.5, 0.4)]]
    per_token = [[pg[i][j] + 0.1 * kl[i][j] for j in range(2)] for i in range(2)]
    expected = sum(sum(row) / 2 for row in per_token) / 2
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    assert out.kl.item() == pytest.approx(sum(map(sum, kl)) / 4, abs=1e-6)
    assert out.clip_high.item() == pytest.approx(0.25)  # token (0,0): ratio 2 > 1.3 with A > 0
    assert out.clip_low.item() == pytest.approx(0.25)  # token (1,0): ratio 0.5 < 0.8 with A < 0


def test_ratio_one_gives_plain_policy_gradient():
    logp = torch.randn(3, 5, requires_grad=True)
    adv = torch.tensor([1.0, 0.0, -1.0])
    out = grpo_loss(logp, logp.detach(), adv)
    out.loss.backward()
    expected = -adv[:, None].expand(3, 5) / 15
    torch.testing.assert_close(logp.grad, expected)
    assert out.ratio_mean.item() == 1.0 and out.clip_low.item() == 0 and out.clip_high.item() == 0


def test_aggregations_agree_on_full_masks_and_differ_on_partial_ones():
    torch.manual_seed(0)
    logp, old = torch.randn(4, 6), torch.randn(4, 6)
    adv = torch.randn(4)
    losses = {t: grpo_loss(logp, old, adv, loss_type=t).loss for t in ("grpo", "bnpo", "dr_grpo")}
    torch.testing.assert_close(losses["grpo"], losses["bnpo"])
    torch.testing.assert_close(losses["grpo"], losses["dr_grpo"])
    mask = torch.ones(4, 6)
    mask[0, 3:] = 0
    mask[2] = 0
    per_token = -torch.minimum(
        torch.exp(logp - old) * adv[:, None], torch.exp(logp - old).clamp(0.8, 1.2) * adv[:, None]
    )
    grpo = sum((per_token[i] * mask[i]).sum() / mask[i].sum() for i in (0, 1, 3)) / 3
    bnpo = (per_token * mask).sum() / mask.sum()
    dr = (per_token * mask).sum() / 24
    torch.testing.assert_close(grpo_loss(logp, old, adv, mask=mask, loss_type="grpo").loss, grpo)
    torch.testing.assert_close(grpo_loss(logp, old, adv, mask=mask, loss_type="bnpo").loss, bnpo)
    torch.testing.assert_close(grpo_loss(logp, old, adv, mask=mask, loss_type="dr_grpo").loss, dr)


def test_sequence_level_ratio_is_length_normalised():
    logp = torch.tensor([[0.0, 0.0, 0.0]])
    old = torch.tensor([[-0.3, 0.0, 0.3 - 0.6]])  # mean log-ratio 0.2
    out = grpo_loss(logp, old, torch.tensor([1.0]), importance_sampling_level="sequence", epsilon_low=0.5)
    assert out.ratio_mean.item() == pytest.approx(math.exp(0.2), abs=1e-6)
    assert out.loss.item() == pytest.approx(-math.exp(0.2), abs=1e-6)


def test_group_advantages_and_ties():
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    adv, tied = group_advantages(rewards, 3, "group", eps=0.0)
    torch.testing.assert_close(adv[:3], torch.tensor([-1.0, 0.0, 1.0]))
    assert adv[3:].abs().max() == 0 and tied.tolist() == [False, True]
    adv_none, _ = group_advantages(rewards, 3, "none")
    torch.testing.assert_close(adv_none[:3], torch.tensor([-1.0, 0.0, 1.0]))
    adv_batch, _ = group_advantages(rewards, 3, "batch", eps=0.0, batch_std=2.0)
    torch.testing.assert_close(adv_batch[:3], torch.tensor([-0.5, 0.0, 0.5]))
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(rewards, 4)


def test_in_group_diversity():
    same = torch.tensor([[1, 2, 3, 4]] * 2)
    assert in_group_diversity(same, 2).item() == 0
    tokens = torch.tensor([[1, 2, 3, 4], [1, 2, 0, 0], [5, 5, 5, 5], [5, 5, 5, 6]])
    assert in_group_diversity(tokens, 2).item() == pytest.approx((0.5 + 0.25) / 2)
