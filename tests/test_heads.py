"""The fused heads must equal LAION's one-module-per-head computation."""

from collections import OrderedDict

import pytest
import torch

from empathic.models.heads import FusedHeads, HeadFormatError, parse_mlp_state_dict
from reference import FaceMLP, FullEmbeddingMLP


def _random_heads(factory, count):
    torch.manual_seed(0)
    return [factory().eval() for _ in range(count)]


@pytest.mark.parametrize("hidden", [[128, 32], [1024, 512, 256]], ids=["face-small", "face-large"])
def test_fused_face_heads_equal_a_per_head_loop(hidden):
    heads = _random_heads(lambda: FaceMLP(1152, hidden), 44 if len(hidden) == 2 else 40)
    fused = FusedHeads([parse_mlp_state_dict(h.state_dict()) for h in heads])
    x = torch.nn.functional.normalize(torch.randn(7, 1152), dim=-1)
    with torch.no_grad():
        expected = torch.cat([h(x) for h in heads], dim=1)
    got = fused(x)
    assert got.shape == (7, len(heads))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_fused_voice_heads_equal_a_per_head_loop_and_strip_compile_prefix():
    heads = _random_heads(lambda: FullEmbeddingMLP(50, 8, 16, [16, 8, 4]), 5)
    states = []
    for i, head in enumerate(heads):
        state = head.state_dict()
        if i % 2:  # torch.compile leaves this prefix in some checkpoints
            state = OrderedDict((f"_orig_mod.{k}", v) for k, v in state.items())
        states.append(parse_mlp_state_dict(state))
    fused = FusedHeads(states)
    x = torch.randn(3, 50, 8)
    with torch.no_grad():
        expected = torch.cat([h(x) for h in heads], dim=1)
    torch.testing.assert_close(fused(x), expected, atol=1e-5, rtol=1e-5)


def test_bf16_fused_heads_stay_close():
    heads = _random_heads(lambda: FaceMLP(64, [32, 16]), 6)
    fused = FusedHeads([parse_mlp_state_dict(h.state_dict()) for h in heads], dtype=torch.bfloat16)
    x = torch.randn(4, 64)
    with torch.no_grad():
        expected = torch.cat([h(x) for h in heads], dim=1)
    torch.testing.assert_close(fused(x), expected, atol=3e-2, rtol=3e-2)


def _state(**overrides):
    state = OrderedDict(FaceMLP(16, [8]).state_dict())
    state.update(overrides)
    return state


@pytest.mark.parametrize("state, message", [
    (_state(**{"layers.9.extra": torch.zeros(1)}), "unexpected key"),
    (OrderedDict((k, v) for k, v in _state().items() if k != "layers.3.bias"), "needs both weight and bias"),
    (_state(**{"layers.3.weight": torch.zeros(1, 5)}), "takes 5 inputs"),
    (_state(**{"layers.3.weight": torch.zeros(2, 8), "layers.3.bias": torch.zeros(2)}), "gives 2 outputs"),
    (_state(**{"head.weight": torch.zeros(1, 1), "head.bias": torch.zeros(1)}), "unexpected layer"),
    ({}, "not a state dict"),
])
def test_malformed_heads_are_rejected_with_a_reason(state, message):
    with pytest.raises(HeadFormatError, match=message):
        parse_mlp_state_dict(state, source="model_x_best.pth")


def test_heads_of_different_shapes_cannot_be_fused():
    a = parse_mlp_state_dict(FaceMLP(16, [8]).state_dict())
    b = parse_mlp_state_dict(FaceMLP(16, [4]).state_dict())
    with pytest.raises(HeadFormatError, match="differ in architecture"):
        FusedHeads([a, b])


def test_streamed_heads_equal_a_list_and_the_announced_count_is_checked():
    heads = _random_heads(lambda: FullEmbeddingMLP(40, 4, 8, [8, 4, 2]), 3)
    states = [parse_mlp_state_dict(h.state_dict()) for h in heads]
    x = torch.randn(5, 40, 4)
    torch.testing.assert_close(FusedHeads(iter(states), num_heads=3)(x), FusedHeads(states)(x))
    with pytest.raises(HeadFormatError, match="expected 4 heads, got 3"):
        FusedHeads(iter(states), num_heads=4)
    with pytest.raises(HeadFormatError, match="more than the 2 heads"):
        FusedHeads(iter(states), num_heads=2)
