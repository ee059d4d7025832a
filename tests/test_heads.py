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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_first_layers_stay_close_and_take_a_quarter_of_the_memory(dtype):
    torch.manual_seed(3)
    heads = _random_heads(lambda: FaceMLP(512, [32, 16]), 5)
    pairs = [parse_mlp_state_dict(h.state_dict()) for h in heads]
    dense = FusedHeads(pairs, dtype=torch.float32)
    quantised = FusedHeads(pairs, dtype=dtype, first_layer="int8")
    x = torch.randn(6, 512)
    expected = dense(x)
    got = quantised(x)
    # per-row int8 keeps each weight within half a step of absmax/127
    assert (got - expected).abs().max() < 0.02 * expected.abs().max() + 0.01
    assert quantised.first_weight.dtype == torch.int8
    first_dense = dense.first_weight.numel() * 4
    first_int8 = quantised.first_weight.numel() + quantised.first_scale.numel() * 4
    assert first_int8 < first_dense / 3.9


def test_int8_without_the_kernel_gives_the_same_scores_as_with_it():
    heads = _random_heads(lambda: FaceMLP(128, [16, 8]), 3)
    pairs = [parse_mlp_state_dict(h.state_dict()) for h in heads]
    fused = FusedHeads(pairs, dtype=torch.bfloat16, first_layer="int8")
    x = torch.randn(4, 128)
    with_kernel = fused(x)
    fused._int8_kernel = False  # the slice-by-slice path that GPUs and fp32 take
    torch.testing.assert_close(fused(x), with_kernel, atol=2e-2, rtol=2e-2)


def test_an_unknown_first_layer_format_is_refused():
    heads = _random_heads(lambda: FaceMLP(16, [8]), 1)
    with pytest.raises(ValueError, match="first layer format 'int4'"):
        FusedHeads([parse_mlp_state_dict(h.state_dict()) for h in heads], first_layer="int4")
