"""Model files (§model-files).

* ``save_model`` / ``load_model``: one ``torch.save`` file of plain tensors and plain Python values,
  read back with ``torch.load(weights_only=True)`` (no code runs on load), bit-exact.
* ``export_original`` / ``load_original``: the original's ``model.nns`` (one ``FC(...)`` line per
  layer) + ``model.mat`` (keys "0", "1", ... = scaler mean, scaler std, W0, b0, ..., [max_logvar,
  min_logvar]). The ``.nns`` lines are parsed as ``key=value`` text, never evaluated.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import scipy.io
import torch

from pets_core.models.ensemble import EnsembleModel

FORMAT = "pets_core.models/1"
NNS_NAME, MAT_NAME = "model.nns", "model.mat"


def save_model(model: EnsembleModel, path: str | Path) -> None:
    payload = {
        "format": FORMAT,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()  # serialised in memory, then one plain write: a full disk is an
    torch.save(payload, buffer)  # OSError (ENOSPC), not torch's "iostream error"
    Path(path).write_bytes(buffer.getvalue())


def load_model(path: str | Path, device: torch.device | str = "cpu") -> EnsembleModel:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} model file")
    model = EnsembleModel(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device)


# ---------------------------------------------------------------------- original layout


def _fc_line(output_dim: int, input_dim: int, activation: str | None, decay: float, E: int) -> str:
    act = "None" if activation is None else repr(activation)
    return (
        f"FC(output_dim={output_dim!r}, input_dim={input_dim!r}, activation={act}, "
        f"weight_decay={decay!r}, ensemble_size={E!r})"
    )


def export_original(model: EnsembleModel, directory: str | Path) -> None:
    """Write ``model.nns`` + ``model.mat`` as the original's ``BNN.save`` / ``NN.save`` do."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    E, L = model.ensemble_size, model.num_layers
    lines = []
    for i, weight in enumerate(model.weights):
        d_in, d_out = weight.shape[1], weight.shape[2]
        last = i == L - 1
        lines.append(
            _fc_line(
                model.out_dim if last else d_out,  # the last line has the un-doubled output dim
                d_in,
                None if last else "swish",
                model.weight_decays[i],
                E,
            )
        )
    (directory / NNS_NAME).write_text("".join(f"{line}\n" for line in lines))

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().astype(np.float32)

    values = [arr(model.normalizer.mean)[None], arr(model.normalizer.std)[None]]  # (1, I) each
    for weight, bias in zip(model.weights, model.biases, strict=True):
        values += [arr(weight), arr(bias)]
    if model.is_probabilistic:
        values += [arr(model.max_logvar), arr(model.min_logvar)]
    scipy.io.savemat(directory / MAT_NAME, {str(i): v for i, v in enumerate(values)})


_FC_RE = re.compile(r"^FC\((.*)\)$")


def _parse_fc(line: str) -> dict[str, str]:
    match = _FC_RE.match(line.strip())
    if match is None:
        raise ValueError(f"not an FC(...) layer line: {line!r}")
    return dict(item.split("=", 1) for item in match.group(1).split(", "))


def load_original(directory: str | Path, device: torch.device | str = "cpu") -> EnsembleModel:
    """Rebuild a model from the original's ``model.nns`` + ``model.mat``."""
    directory = Path(directory)
    layers = [_parse_fc(line) for line in (directory / NNS_NAME).read_text().splitlines() if line]
    mat = scipy.io.loadmat(directory / MAT_NAME)
    values = [mat[str(i)] for i in range(sum(1 for k in mat if k.isdigit()))]
    L = len(layers)
    if len(values) not in (2 + 2 * L, 4 + 2 * L):
        raise ValueError(
            f"{MAT_NAME} holds {len(values)} arrays; {L} layers need {2 + 2 * L} or {4 + 2 * L}"
        )
    is_probabilistic = len(values) == 4 + 2 * L
    decays = [0.0 if kw["weight_decay"] == "None" else float(kw["weight_decay"]) for kw in layers]
    model = EnsembleModel(
        in_dim=int(layers[0]["input_dim"]),
        out_dim=int(layers[-1]["output_dim"]),
        hidden_dims=[int(kw["output_dim"]) for kw in layers[:-1]],
        weight_decays=decays,
        ensemble_size=int(layers[0]["ensemble_size"]),
        is_probabilistic=is_probabilistic,
    )
    targets = [model.normalizer.mean, model.normalizer.std]
    for weight, bias in zip(model.weights, model.biases, strict=True):
        targets += [weight, bias]
    if is_probabilistic:
        targets += [model.max_logvar, model.min_logvar]
    with torch.no_grad():
        for target, value in zip(targets, values, strict=True):
            tensor = torch.from_numpy(np.asarray(value, dtype=np.float32))
            if tensor.numel() != target.numel():
                raise ValueError(
                    f"{MAT_NAME}: array {tuple(tensor.shape)} for a {tuple(target.shape)} tensor"
                )
            target.copy_(tensor.reshape(target.shape))
    return model.to(device)
