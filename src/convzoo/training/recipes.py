"""Named recipes: the settings a run starts from before the user's flags.

- ``fast`` (the default): what trains best per second of this machine on these small datasets — SGD with
  Nesterov momentum, a one-cycle schedule, label smoothing, random crops and flips on the device, an
  exponential moving average of the weights, bf16 autocast and channels_last where the device runs
  bf16 natively. Chosen by measurement (benchmarks/ and the README say which).
- ``paper``: each family's optimizer, schedule and regularisers as its paper states them. The papers
  trained on ImageNet for days; where a paper is silent or its setting has no meaning on a small dataset,
  the recipe says in its ``guesses`` what it chose instead. Augmentation is reduced to what the small
  datasets allow (random crops with padding, flips): the papers' scale jittering and colour noise are
  ImageNet-resolution operations.
- ``d2l``: the textbook experiment exactly (Dive into Deep Learning 1.0, `train_ch6`): SGD with no momentum
  or weight decay, batch 128, lr 0.01 (AlexNet's chapter and every network but LeNet) or 0.1 (LeNet's
  chapter), Xavier-uniform initialisation, no augmentation, fp32, 10 epochs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError, closest
from ..registry import model_info

__all__ = ["RECIPES", "Recipe", "paper_recipe", "recipe_settings"]


@dataclass(frozen=True)
class Recipe:
    """Settings (TrainConfig field → value), where they come from, and what had to be guessed."""

    settings: dict[str, Any]
    source: str
    guesses: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # builder options (aux heads on, ...)


_SMALL_DATA = "augmentation: random crops (padding 4) and flips instead of the paper's ImageNet crops and jitter"

# The optimisation settings common to the papers that follow Krizhevsky's SGD: momentum 0.9, weight decay
# 5e-4, lr 0.01 divided by 10 when the validation error stops improving.
_KRIZHEVSKY = {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "lr": 0.01, "schedule": "plateau",
               "gamma": 0.1, "val_fraction": 0.1, "crop_padding": 4, "hflip": True}
_PLATEAU_GUESS = "the validation split (10 % of the training data) and patience 3 epochs for 'stopped improving'"
# RMSProp as the Inception v3 paper states it: decay 0.9, ε = 1.0, lr 0.045 ×0.94 every 2 epochs, clip 2.0.
_INCEPTION_RMSPROP = {"optimizer": "rmsprop", "rms_decay": 0.9, "eps": 1.0, "momentum": 0.9, "lr": 0.045,
                      "schedule": "step", "step_every": 2, "gamma": 0.94, "crop_padding": 4, "hflip": True}
# MobileNet v2 §6.1 (MobileNet v1 states no numbers and takes these): RMSProp decay 0.9, momentum 0.9,
# weight decay 4e-5, lr 0.045 ×0.98 per epoch, batch 96; ε 1.0 as in TF-slim; 60 epochs on the small datasets.
_MOBILENET_V2 = {"optimizer": "rmsprop", "rms_decay": 0.9, "momentum": 0.9, "eps": 1.0, "lr": 0.045,
                 "schedule": "exponential", "gamma": 0.98, "weight_decay": 4e-5, "epochs": 60, "batch_size": 96,
                 "crop_padding": 4, "hflip": True}
_EPS_NOTE = "torch's RMSProp adds ε outside the square root (TensorFlow's, which the paper used, inside)"

PAPER: dict[str, Recipe] = {
    "lenet": Recipe(
        {"optimizer": "sgd", "momentum": 0.0, "lr": 0.01, "batch_size": 32, "epochs": 20, "schedule": "piecewise",
         "milestones": (2, 5, 8, 12), "factors": (0.4, 0.2, 0.1, 0.02)},
        "LeCun et al. 1998, Appendix C: 20 passes, global step sizes 0.0005 (2 passes), 0.0002 (3), 0.0001 (3), "
        "0.00005 (4), then 0.00001",
        ("SGD stands in for the stochastic diagonal Levenberg-Marquardt method: its per-parameter step sizes are "
         "not implemented; the step-size schedule keeps the paper's ratios (1, 0.4, 0.2, 0.1, 0.02) on a base lr "
         "of 0.01",
         "batch 32 instead of per-sample updates")),
    "alexnet": Recipe(
        {**_KRIZHEVSKY, "batch_size": 128, "epochs": 90},
        "Krizhevsky et al. 2012, §5: SGD batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 ÷10 when the "
        "validation error stopped improving (three times, ~90 epochs); the initialisation is the network's own",
        (_PLATEAU_GUESS, _SMALL_DATA + "; no PCA colour noise")),
    "vgg": Recipe(
        {**_KRIZHEVSKY, "batch_size": 256, "epochs": 74},
        "Simonyan & Zisserman 2014, §3.1: SGD batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5, lr 0.01 ÷10 "
        "when validation accuracy stopped improving (three times, 74 epochs)",
        (_PLATEAU_GUESS, _SMALL_DATA + "; no scale jittering", "Glorot initialisation for every configuration "
         "(the paper's alternative to initialising from A)")),
    "nin": Recipe(
        {**_KRIZHEVSKY, "batch_size": 128, "epochs": 90},
        "Lin et al. 2013, §4: dropout between mlpconv layers, Krizhevsky's SGD schedule (lr ÷10 on plateau)",
        (_PLATEAU_GUESS, "batch 128, lr 0.01 and weight decay 5e-4 from Krizhevsky", _SMALL_DATA)),
    "googlenet": Recipe(
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01, "weight_decay": 2e-4, "schedule": "step", "step_every": 8,
         "gamma": 0.96, "ema": 0.999, "epochs": 60, "batch_size": 128, "crop_padding": 4, "hflip": True},
        "Szegedy et al. 2014, §6: SGD momentum 0.9, lr decreased 4 % every 8 epochs, Polyak averaging, auxiliary "
        "losses weighted 0.3",
        ("Polyak averaging as an exponential moving average of the weights (decay 0.999)",
         "lr 0.01, weight decay 2e-4, batch 128 and 60 epochs: the paper states none of them",
         "synchronous SGD instead of DistBelief's asynchronous SGD", _SMALL_DATA),
        {"aux_logits": True}),
    "inception_bn": Recipe(
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.0075, "weight_decay": 4e-5, "schedule": "exponential",
         "gamma": 0.9698, "epochs": 30, "batch_size": 128, "crop_padding": 4, "hflip": True},
        "Ioffe & Szegedy 2015, §4.2.1: the Inception schedule with the lr raised ×5, no dropout, L2 weight "
        "reduced 5×, the decay 6× faster",
        ("lr 0.0075 = 5 × Inception's 0.0015 (the BN-x5 network)", "weight decay 4e-5 = 2e-4 / 5",
         "decay 6× faster than 4 % every 8 epochs: ×0.96^(6/8) = ×0.9698 per epoch", "30 epochs", _SMALL_DATA)),
    "inception_v3": Recipe(
        {**_INCEPTION_RMSPROP, "label_smoothing": 0.1, "clip_grad": 2.0, "batch_size": 32, "epochs": 100},
        "Szegedy et al. 2015, §7-8: RMSProp decay 0.9, ε = 1.0, lr 0.045 decayed ×0.94 every 2 epochs, gradient "
        "clipping 2.0, label smoothing 0.1, batch 32 per replica, 100 epochs, the BN auxiliary head",
        (_EPS_NOTE, "momentum 0.9 in RMSProp (TF-slim's default; the paper does not say)", _SMALL_DATA),
        {"aux_logits": True}),
    "inception_v4": Recipe(
        {**_INCEPTION_RMSPROP, "batch_size": 32, "epochs": 100},
        "Szegedy et al. 2016, §4: RMSProp decay 0.9, ε = 1.0, lr 0.045 decayed ×0.94 every 2 epochs",
        (_EPS_NOTE, "batch 32 and 100 epochs as in Inception v3", _SMALL_DATA)),
    "xception": Recipe(
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.045, "schedule": "step", "step_every": 2, "gamma": 0.94,
         "weight_decay": 1e-5, "epochs": 100, "batch_size": 32, "crop_padding": 4, "hflip": True},
        "Chollet 2016, §4.3 (ImageNet): SGD momentum 0.9, lr 0.045 decayed ×0.94 every 2 epochs, weight decay "
        "1e-5, dropout 0.5 before the logistic layer, no auxiliary tower",
        ("batch 32 and 100 epochs: not stated", _SMALL_DATA)),
    "squeezenet": Recipe(
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.04, "schedule": "linear", "weight_decay": 2e-4,
         "epochs": 60, "batch_size": 256, "crop_padding": 4, "hflip": True},
        "Iandola et al. 2016, §3.3 and the release: lr 0.04 decreased linearly to 0; dropout 0.5 after fire9",
        ("momentum 0.9 and weight decay 2e-4 from the released solver", "batch 256 and 60 epochs", _SMALL_DATA)),
    "mobilenet_v1": Recipe(
        {**_MOBILENET_V2, "wd_skip_bn_bias": True},
        "Howard et al. 2017, §4: RMSProp, little regularisation and augmentation, little or no weight decay on the "
        "depthwise filters",
        ("lr 0.045 ×0.98 per epoch, decay 0.9, ε 1.0, weight decay 4e-5 and batch 96 from MobileNet v2's "
         "recipe", "no weight decay on BN and biases (the depthwise filters keep 4e-5)", "60 epochs",
         _SMALL_DATA)),
    "mobilenet_v2": Recipe(
        _MOBILENET_V2,
        "Sandler et al. 2018, §6.1: RMSProp decay 0.9 and momentum 0.9, weight decay 4e-5, lr 0.045 decayed ×0.98 "
        "per epoch, batch 96 (per GPU)",
        (_EPS_NOTE + "; ε 1.0 as in TF-slim", "60 epochs", _SMALL_DATA)),
    "shufflenet_v1": Recipe(
        {"optimizer": "sgd", "momentum": 0.9, "lr": 0.5, "schedule": "linear", "weight_decay": 4e-5,
         "batch_size": 1024, "epochs": 60, "crop_padding": 4, "hflip": True},
        "Zhang et al. 2017, §4: weight decay 4e-5, lr decayed linearly from 0.5 to 0, batch 1024",
        ("SGD with momentum 0.9 (the released code's)", "60 epochs instead of 3·10⁵ iterations", _SMALL_DATA)),
    "resnet": Recipe(
        {"optimizer": "sgd", "momentum": 0.9, "weight_decay": 1e-4, "lr": 0.1, "schedule": "plateau", "gamma": 0.1,
         "val_fraction": 0.1, "batch_size": 256, "epochs": 120, "crop_padding": 4, "hflip": True},
        "He et al. 2015, §3.4 (and Xie et al. 2016, §4): SGD batch 256, momentum 0.9, weight decay 1e-4, lr 0.1 "
        "÷10 at plateaus, no dropout, He initialisation (the network's own)",
        (_PLATEAU_GUESS, "120 epochs ≈ 60·10⁴ iterations at batch 256 on ImageNet", _SMALL_DATA)),
}
PAPER["inception_resnet"] = PAPER["inception_v4"]

FAST = Recipe(
    {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "lr": 0.1, "schedule": "onecycle",
     "weight_decay": 5e-4, "wd_skip_bn_bias": True, "label_smoothing": 0.1, "ema": 0.998, "batch_size": 256,
     "crop_padding": 1, "hflip": True, "amp": "auto", "channels_last": True, "epochs": 60},
    "measured on this project's 2-core CPU with lenet5_modern on Fashion-MNIST (README, 'The main job'): random "
    "crops of 1 pixel beat 0 (overfits after 40 epochs) and 2 (learns too slowly for 60 epochs)")

# Where the fast recipe's SGD at lr 0.1 does not train a network, what does instead (by registered name, else by
# family); measured on Fashion-MNIST on this project's 2-core CPU, 3 epochs for lenet5 and 2 for squeezenet1_0 at
# 32×32, the rest of the recipe unchanged.
FAST_EXCEPTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "lenet5": ({"lr": 0.01},
               "lenet5: lr 0.01, since its scaled tanh units and RBF output saturate at 0.1 with Nesterov momentum "
               "(chance from the first epoch; 0.05: chance, 0.02: 40.6 %, 0.01: 84.8 % after 3 epochs)"),
    "squeezenet": ({"optimizer": "adamw", "lr": 1.5e-3, "xavier_init": True},
                   "SqueezeNet: AdamW at lr 1.5e-3 and Xavier-uniform initialisation, since without batch norm it "
                   "stays at chance under SGD at lr 0.1 (0.02: 25.0 % after 2 epochs; AdamW: 70.6 %; with Xavier "
                   "initialisation too: 77.8 %)"),
}

_D2L_LOOP = {"optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "schedule": "none",
             "epochs": 10, "crop_padding": 0, "hflip": False, "xavier_init": True, "label_smoothing": 0.0, "ema": 0.0,
             "amp": "none", "channels_last": False}
D2L = Recipe(
    {**_D2L_LOOP, "lr": 0.01, "batch_size": 128, "resize": "resize"},
    "Dive into Deep Learning 1.0, §8.1 (AlexNet), the train_ch6 loop: SGD lr 0.01, batch 128, Xavier-uniform "
    "initialisation of conv and linear weights, images resized to the input (224 in the book; 227 for the paper "
    "AlexNet here), no augmentation, 10 epochs")
D2L_LENET = Recipe(
    {**_D2L_LOOP, "lr": 0.1, "batch_size": 128, "resize": "auto"},
    "Dive into Deep Learning 1.0, §7.6 (LeNet): SGD lr 0.1, batch 128, Xavier-uniform initialisation, the 28×28 "
    "images padded to 32 (the book pads in the first convolution), no augmentation, 10 epochs",
    ("the book's network has sigmoid units and average pooling; its earlier train_ch6 edition used lr 0.9 and "
     "batch 256, at which lenet5's scaled tanh and RBF output diverge",))

RECIPES = ("fast", "paper", "d2l")


def paper_recipe(model: str) -> Recipe:
    family = model_info(model).family
    return PAPER[family]


def recipe_settings(recipe: str, model: str) -> Recipe:
    """The recipe `recipe` for the registered network `model`."""
    if recipe == "fast":
        exception = FAST_EXCEPTIONS.get(model) or FAST_EXCEPTIONS.get(model_info(model).family)
        if exception is None:
            return FAST
        settings, why = exception
        return Recipe({**FAST.settings, **settings}, f"{FAST.source}; {why}", FAST.guesses, FAST.options)
    if recipe == "d2l":
        return D2L_LENET if model_info(model).family == "lenet" else D2L
    if recipe == "paper":
        return paper_recipe(model)
    hint = closest(recipe, RECIPES)
    raise UserError(f"unknown recipe {recipe!r}{'; did you mean ' + hint[0] + '?' if hint else ''} "
                    f"(choose {', '.join(RECIPES)}; `convzoo recipes` lists their settings)")
