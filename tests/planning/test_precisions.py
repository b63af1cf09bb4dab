"""Planner precisions (issue 12): each layer's matmul runs in the dtype its precision names.

The oracle is float64 maths that rounds exactly where a dtype stores a value: the normalised input,
each layer's input, weights, bias and output (``round(h) @ round(W) + round(b)``, swish, round).
oneDNN fuses bias and swish into the matmul, so it rounds once after the swish; the batched-matmul
path stores the matmul's output before its in-place swish, so it rounds twice. Against the right
oracle every precision agrees to float32 accumulation (~3e-8 here); against any other precision's
oracle it is off by >= 1e-4, so the test tells the layer assignments apart.
"""

import pytest
import torch
from support.fakes import small_model

from pets_core.config import PRECISIONS
from pets_core.envs.tasks import get_task
from pets_core.planning.forward import FastPredictor, layer_dtypes, make_predictor

F32, B16 = torch.float32, torch.bfloat16


def test_layer_dtypes_name_the_layers():
    assert layer_dtypes("fp32", 4) == (F32,) * 4
    assert layer_dtypes("bf16", 4) == (B16,) * 4
    assert layer_dtypes("bf16-hidden", 5) == (F32, B16, B16, B16, F32)
    assert layer_dtypes("bf16-trunk", 5) == (B16, B16, B16, B16, F32)
    with pytest.raises(ValueError, match="fp32, bf16, bf16-hidden, bf16-trunk"):
        layer_dtypes("fp16", 4)


def _oracle(net, obs_in, actions, dtypes, *, round_before_swish: bool):
    """The members' mean ``(E, N, R, T)`` in float64, rounded to ``dtypes`` where stored."""
    f64 = torch.float64

    def stored(x, dtype):
        return x.to(dtype).to(f64)

    E, N, R, _ = obs_in.shape
    x = torch.cat([obs_in.double(), actions.double()[None, :, None].expand(E, N, R, -1)], -1)
    h = ((x - net.in_mean.double()) / net.in_std.double()).view(E, N * R, -1)
    last = len(net.layers) - 1
    for i, ((w, b), dtype) in enumerate(zip(net.layers, dtypes, strict=True)):
        z = stored(h, dtype) @ stored(w, dtype) + stored(b, dtype)  # (E, N R, out)
        if i < last:
            z = stored(z, dtype) if round_before_swish else z
            z = z * torch.sigmoid(z)
        h = stored(z, dtype)
    return h[..., : net.out_dim].view(E, N, R, -1)


@pytest.mark.parametrize("backend", ["onednn", "bmm"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_layer_runs_in_its_precisions_dtype(backend, precision):
    if backend == "onednn" and not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        pytest.skip("no oneDNN linear on this build")
    task = get_task("halfcheetah")
    model = small_model("PE", task)  # 3 layers: in -> 32 -> 32 -> 2T
    net = model.mlp_weights()
    gen = torch.Generator().manual_seed(3)
    E, N, R, H = 5, 6, 4, 2
    obs_in = torch.randn(E, N, R, task.in_dim - task.act_dim, generator=gen)
    action_seqs = torch.rand(N, H, task.act_dim, generator=gen) * 2 - 1
    predictor = make_predictor(model, task.act_dim, backend, precision)
    assert isinstance(predictor, FastPredictor) and predictor.backend == backend
    assert predictor.dtypes == layer_dtypes(precision, 3)
    predictor.prepare(action_seqs)
    mean, _ = predictor.members(obs_in, 1, need_std=False)
    assert mean.dtype == F32

    def oracle(name):
        dtypes = layer_dtypes(name, 3)
        return _oracle(net, obs_in, action_seqs[:, 1], dtypes, round_before_swish=backend == "bmm")

    torch.testing.assert_close(mean.double(), oracle(precision), rtol=0, atol=1e-6)
    for other in PRECISIONS:
        if other != precision:
            assert (mean.double() - oracle(other)).abs().max() > 1e-4, other
