"""AlexNet (Krizhevsky et al. 2012): the layers of §3.5 (their kernels, and the neurons listed per layer) and the
abstract's totals (60 million parameters, 650,000 neurons). Sources: the paper; tests/test_family_alexnet.py.

The paper prints no per-layer parameter count: the params column is what §3.5's kernels hold, n kernels of
k×k×c weights plus n biases (fc6 reads the 6×6×256 pooled maps of Fig. 2), and checks that our layers have
exactly those kernels. Neurons are the outputs of each layer, as the paper lists them.
"""
from __future__ import annotations

from collections.abc import Sequence

from .common import Column, PaperTable, Row, Value, layer_figures, network_figures

__all__ = ["TABLES"]

PARAMS = Column("params", "params of §3.5's kernels")
NEURONS = Column("neurons", "neurons (§3.5)")
# §3.5: (kernels n, kernel size k, input maps per kernel c) of each layer, and the neurons listed per layer.
_LAYERS = {
    "conv1": ((96, 11, 3), 253_440, "features.conv1.conv"),
    "conv2": ((256, 5, 48), 186_624, "features.conv2.conv"),
    "conv3": ((384, 3, 256), 64_896, "features.conv3.conv"),
    "conv4": ((384, 3, 192), 64_896, "features.conv4.conv"),
    "conv5": ((256, 3, 192), 43_264, "features.conv5.conv"),
    "fc6": ((4096, 6, 256), 4096, "head.fc6"),
    "fc7": ((4096, 1, 4096), 4096, "head.fc7"),
    "fc8": ((1000, 1, 4096), 1000, "head.fc8"),
}


def _row(label: str) -> Row:
    (n, k, c), neurons, path = _LAYERS[label]
    note = None if label != "conv1" else ("96 maps of 55×55 hold 96·55·55 = 290,400 neurons; the printed 253,440 "
                                          "is 96·55·48, a count no square map gives")
    return Row(f"{label} ({n} × {k}×{k}×{c})", {"params": n * (k * k * c + 1), "neurons": neurons}, "alexnet",
               layers=(path,), off=("neurons",) if note else (), note=note)


LAYERS = PaperTable(
    "alexnet", "layers", "§3.5", "the layers: kernels and neurons (227 × 227 input)", "layer (n × k×k×c)",
    (PARAMS, NEURONS), tuple(_row(label) for label in _LAYERS), layer_figures,
    ("Fig. 2 draws a 224×224 input, but conv1's 55×55 maps need 227 (⌊(227 − 11)/4⌋ + 1 = 55): ours are measured "
     "at 227.",
     "conv2, conv4 and conv5 see only the maps on their own GPU (c = 48 and 192): grouped convolutions, groups = 2."))


def _totals(rows: Sequence[Row]) -> list[dict[str, Value]]:
    """The whole network's parameters, and the neurons of the eight layers the paper lists, summed."""
    neurons = sum(int(f["neurons"]) for f in layer_figures(LAYERS.rows))  # type: ignore[call-overload]
    return [{**figs, "neurons": neurons} for figs in network_figures(rows)]


TOTALS = PaperTable(
    "alexnet", "totals", "abstract and §4", "parameters and neurons of the whole network", "network", (
        Column("params", "parameters (millions)", unit=1e6, tol=5),
        Column("neurons", "neurons (thousands)", unit=1e3, tol=5),
    ), (
        Row("AlexNet", {"params": 60, "neurons": 650}, "alexnet", off=("neurons",),
            note="the eight layers hold 659,272 neurons and the paper's own per-layer list sums to 622,312: "
                 "neither is 650,000 to its two significant figures"),
    ), _totals,
    ("\"60 million\" is printed to one significant figure (±5 M), \"650,000\" to two (±5,000).",))

TABLES = (LAYERS, TOTALS)
