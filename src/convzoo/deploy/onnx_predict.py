"""Predict from an exported ONNX file the way a deployment would: onnxruntime, numpy and PIL, no torch.

Everything the network needs besides its graph comes from the file's ``metadata_props`` (JSON values written
by `convzoo.deploy.export`): the class names, the input size and channels, the per-channel mean and std of the
images it was trained on, and the stored image size the training pipeline resized from.

Each image goes the way `convzoo predict RUN IMAGE` takes it, step for step, so that the two agree:

1. decoded by PIL and converted to grey or RGB (the stored images' channels);
2. its shorter side resized to the stored size (bilinear, antialiased) and the centre cropped to it, as
   torchvision's ``Resize(int)`` + ``CenterCrop`` do;
3. to float in [0, 1], then to the network's channels (grey repeated to RGB, RGB to grey by ITU-R 601 luma);
4. to the network's input size: zero padding when that is at most 4 pixels larger, else bilinear resizing
   with antialiasing when shrinking (PIL's filter, which torch's antialiased resize follows), as
   `convzoo.data.pipeline.prepare` does;
5. normalised by the mean and std (converted to the network's channels the same way).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UserError

__all__ = ["is_onnx", "metadata_of", "predict_onnx", "preprocess", "read_onnx_metadata"]

FORMAT = "convzoo-export/1"  # as convzoo.deploy.export writes it (that module imports torch; this one must not)
_LUMA = (0.299, 0.587, 0.114)
_PAD_LIMIT = 4  # convzoo.data.pipeline.PAD_LIMIT


def is_onnx(path: str | os.PathLike[str]) -> bool:
    """Whether a predict SOURCE is an ONNX file (by its suffix: the torch-free path is chosen before reading)."""
    return os.fspath(path).lower().endswith(".onnx")


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise UserError("running an ONNX file needs onnxruntime: pip install 'convzoo[export]'") from None
    return onnxruntime


def _session(path: str, device: str = "cpu") -> Any:
    ort = _ort()
    if not os.path.isfile(path):
        raise UserError(f"ONNX file {path!r} does not exist; write one with `convzoo export RUN --format onnx --out "
                        f"{os.path.basename(path)}`")
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError("--device cuda needs onnxruntime-gpu (this onnxruntime has "
                            f"{', '.join(ort.get_available_providers())}); leave out --device")
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a deployment's output is its predictions
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as err:  # onnxruntime raises its own types for a bad file
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load ONNX file {path!r}: it is truncated, corrupt or not ONNX ({first}); export it "
                        "again") from None


def metadata_of(session: Any, path: str) -> dict[str, Any]:
    """The convzoo metadata of a loaded ONNX session (each entry a JSON string)."""
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except ValueError:
        meta = {}
    if meta.get("format") != FORMAT:
        raise UserError(f"{path!r} is an ONNX file without convzoo's metadata (class names, input size, "
                        "normalisation); export the network with `convzoo export` to predict from it")
    for key in ("classes", "input"):
        if key not in meta:
            raise UserError(f"{path!r} lacks its {key!r} metadata entry; export it again with `convzoo export`")
    return meta


def read_onnx_metadata(path: str) -> dict[str, Any]:
    """The convzoo metadata of an ONNX file."""
    return metadata_of(_session(path), path)


# --- images -------------------------------------------------------------------------------------------

def _decode(path: str, channels: int) -> Any:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UserError("reading images needs Pillow: pip install pillow") from None
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise UserError(f"image {path!r} does not exist") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot read image {path!r}: not an image file, or a damaged one ({err})") from None


def _stored(im: Any, size: tuple[int, int]) -> np.ndarray:
    """uint8 (C, H, W) at `size`: the shorter side resized to min(size), then the centre crop (zero-padded where
    the image is smaller), as torchvision's Resize(int) and CenterCrop."""
    from PIL import Image

    w, h = im.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_short = min(size)
    new_long = int(new_short * long_ / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    th, tw = size
    ph, pw = max(th - a.shape[1], 0), max(tw - a.shape[2], 0)
    if ph or pw:
        a = np.pad(a, ((0, 0), (ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2)))
    top, left = round((a.shape[1] - th) / 2.0), round((a.shape[2] - tw) / 2.0)  # as torchvision rounds
    return a[:, top:top + th, left:left + tw]


def _stats(values: Sequence[float], have: int, want: int) -> np.ndarray:
    if have == want:
        out = list(values)
    elif want == 3:
        out = list(values) * 3
    else:
        out = [sum(w * v for w, v in zip(_LUMA, values))]
    return np.asarray(out, dtype=np.float32).reshape(-1, 1, 1)


def _channels(x: np.ndarray, want: int) -> np.ndarray:
    have = x.shape[0]
    if have == want:
        return x
    if have == 1 and want == 3:
        return np.repeat(x, 3, axis=0)
    if have == 3 and want == 1:
        return (x * np.asarray(_LUMA, dtype=np.float32).reshape(3, 1, 1)).sum(0, keepdims=True, dtype=np.float32)
    raise UserError(f"cannot turn {have}-channel images into the {want} channels the network takes")


def _to_size(x: np.ndarray, size: tuple[int, int], resize: str) -> np.ndarray:
    from PIL import Image

    h, w = x.shape[1:]
    if (h, w) == size:
        return x
    dh, dw = size[0] - h, size[1] - w
    if resize == "pad" or (resize == "auto" and 0 <= dh <= _PAD_LIMIT and 0 <= dw <= _PAD_LIMIT):
        if dh < 0 or dw < 0:
            raise UserError(f"cannot pad {h}×{w} images to {size[0]}×{size[1]}; the file asks for padding")
        return np.pad(x, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)))
    planes = [np.asarray(Image.fromarray(c, mode="F").resize((size[1], size[0]), Image.Resampling.BILINEAR))
              for c in x]
    return np.stack(planes).astype(np.float32)


def preprocess(path: str, meta: dict[str, Any]) -> np.ndarray:
    """One image file → the float32 (C, H, W) input the exported network takes (steps 1–5 of the module doc)."""
    spec = meta["input"]
    size = (int(spec["size"][0]), int(spec["size"][1]))
    stored = tuple(meta.get("stored_size") or size)
    have = len(spec["mean"])  # the stored images' channels: their statistics are per stored channel
    if have not in (1, 3):
        raise UserError(f"the network was trained on {have}-channel images; only grey and RGB image files can be "
                        "read")
    x = _stored(_decode(path, have), stored).astype(np.float32) / 255  # type: ignore[arg-type]
    x = _to_size(_channels(x, int(spec["channels"])), size, spec.get("resize", "auto"))
    mean, std = _stats(spec["mean"], have, x.shape[0]), _stats(spec["std"], have, x.shape[0])
    return ((x - mean) / std).astype(np.float32)


def predict_onnx(path: str | os.PathLike[str], images: Sequence[str], *, top: int = 5,
                 device: str = "cpu") -> list[dict[str, Any]]:
    """The `top` classes and their probabilities for each image file, from an exported ONNX file alone.

    Returns the records `convzoo.predict` returns: ``{"image", "top": [{"class", "index", "probability"}]}``.
    """
    path = os.fspath(path)
    if top < 1:
        raise UserError(f"--top must be 1 or more, got {top}")
    session = _session(path, device)
    meta = metadata_of(session, path)
    classes = list(meta["classes"])
    batch = np.stack([preprocess(p, meta) for p in images])
    logits = session.run(None, {session.get_inputs()[0].name: batch})[0].astype(np.float64)
    logits -= logits.max(1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    k = min(top, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [{"image": p, "top": [{"class": classes[i] if i < len(classes) else str(i), "index": int(i),
                                  "probability": float(row[i])} for i in idx]}
            for p, row, idx in zip(images, probs, order)]
