"""Reference architectures with physical layers inside: a character-level transformer and a CNN.

Both take a *device* the way :func:`hybridnet.network.build_mlp` does: None (all-digital), a name
("mzi", "mrr", "slm", "usv"), or a factory ``device(in_features, out_features, seed) ->
BlackBox`` for your own hardware. Every map the device replaces becomes a
:class:`~hybridnet.BlackBoxLayer` with its own device and independent seeds, trained as
``layer_options`` say (in situ by default). They are plain torch modules: train them in a
PyTorch loop, or give them to ``HybridNetClassifier(module=...)``.

- :class:`CharTransformer`: a GPT-style language model: token and position embeddings,
  pre-norm blocks (causal self-attention, then an MLP whose up- and/or down-projection is the
  device), a final norm and the output map. A device sees every position of every sequence:
  a batch of 32 sequences of 128 characters is 4,096 vectors per device call.
- :class:`SmallCNN`: convolution stages (two 3x3 convolutions with batch norm and ReLU, then
  2x2 max pooling), then a classifier MLP whose hidden-to-hidden map is the device; optionally
  a device as the 1x1 channel-mixing map after the last stage.
"""

import math
import numbers

import torch
from torch import nn

from ._random import spawn_seeds
from .layers import BlackBoxLayer
from .network import DEVICES
from .physical import BlackBox

DEVICE_MAPS = ("up", "down")


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


# Gaussian inputs device_layer spends measuring a device's output scale.
SCALE_QUERIES = 32


class DeviceGain(nn.Module):
    """A device followed by a trainable per-output gain (the electronic gain stage after the
    detector), started so that the map's outputs have the scale of a default ``nn.Linear``.

    Devices differ in scale by orders of magnitude: a 512-input MRR bank, whose weights are
    mostly positive and about 0.5, answers about 23x as loud as ``nn.Linear`` (the SLM and
    MZI mesh, within 1.3x). Where nothing downstream renormalises, say a transformer's
    residual stream, that drowns the stream.

    Parameters
    ----------
    layer : BlackBoxLayer
        The device layer.
    generator : torch.Generator, optional
        Source of the ``SCALE_QUERIES`` Gaussian inputs that measure the device's scale (they
        are counted as device queries).

    Attributes
    ----------
    gain : torch.nn.Parameter
        (out_features,), digital.

    Examples
    --------
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.models import DeviceGain
    >>> from hybridnet.physical import MRRBank
    >>> layer = BlackBoxLayer(MRRBank(16, 4, seed=0), seed=0)
    >>> mapped = DeviceGain(layer, torch.Generator().manual_seed(0))
    >>> mapped.gain.shape, layer.device_queries()  # the scale measurement's queries
    (torch.Size([4]), 32)
    >>> x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))  # the same inputs
    >>> with torch.no_grad():
    ...     rms = mapped(x).square().mean().sqrt()
    >>> round(float(rms) * 3 ** 0.5, 4)  # outputs of nn.Linear's scale, 1 / sqrt(3)
    1.0
    """

    def __init__(self, layer, generator=None):
        super().__init__()
        self.layer = layer
        x = torch.randn(SCALE_QUERIES, layer.in_features, generator=generator)
        with torch.no_grad():
            measured = layer(x).square().mean().sqrt().clamp_min(1e-12)
        # nn.Linear's default weights are U(-1/sqrt(n), 1/sqrt(n)): outputs of std 1/sqrt(3)
        # for unit inputs.
        self.gain = nn.Parameter(torch.full((layer.out_features,),
                                            float(1 / math.sqrt(3) / measured)))

    def forward(self, x):
        return self.layer(x) * self.gain


def device_layer(device, in_features, out_features, *, device_options=None, layer_options=None,
                 gain=True, seed=0):
    """A map ``in_features -> out_features``: ``nn.Linear`` or a device in a BlackBoxLayer.

    Parameters
    ----------
    device : None, {"mzi", "mrr", "slm", "usv"} or callable
        None gives ``nn.Linear``; a name builds that simulated device (with ``device_options``);
        a callable is called as ``device(in_features, out_features, seed)`` and must return a
        :class:`~hybridnet.physical.BlackBox` of that shape.
    in_features, out_features : int
        The map's widths.
    device_options : dict, optional
        Keyword arguments of the named device class (non-idealities).
    layer_options : dict, optional
        Keyword arguments of :class:`~hybridnet.BlackBoxLayer`.
    gain : bool, default=True
        Follow the device by a :class:`DeviceGain` (``SCALE_QUERIES`` queries to set it up).
    seed : int, default=0
        Root seed of the device, the layer and the gain's measurement (independent streams).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> from hybridnet.models import device_layer
    >>> device_layer("slm", 8, 4, gain=False).black_box
    SLM(in_features=8, out_features=4, n_params=32)
    >>> device_layer("mrr", 8, 4).layer.black_box.n_queries  # measuring the gain's start
    32
    >>> device_layer(None, 8, 4)
    Linear(in_features=8, out_features=4, bias=True)
    """
    if device is None:
        return nn.Linear(in_features, out_features)
    device_seed, layer_seed, gain_seed = spawn_seeds(seed, 3)
    if isinstance(device, str):
        if device not in DEVICES:
            raise ValueError(f"device must be None, one of {sorted(DEVICES)} or a callable, got "
                             f"{device!r}")
        box = DEVICES[device](in_features, out_features, seed=device_seed,
                              **(device_options or {}))
    elif callable(device):
        box = device(in_features, out_features, device_seed)
        if not isinstance(box, BlackBox) or (box.in_features, box.out_features) != (
                in_features, out_features):
            raise ValueError(f"the device factory must return a BlackBox mapping {in_features} "
                             f"-> {out_features} features, got {box!r}")
    else:
        raise ValueError(f"device must be None, one of {sorted(DEVICES)} or a callable, got "
                         f"{device!r}")
    layer = BlackBoxLayer(box, seed=layer_seed, **(layer_options or {}))
    return DeviceGain(layer, torch.Generator().manual_seed(gain_seed)) if gain else layer


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (one fused query/key/value map, then the output map).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.models import CausalSelfAttention
    >>> _ = torch.manual_seed(0)
    >>> attention = CausalSelfAttention(16, n_heads=4)
    >>> x = torch.randn(2, 6, 16)
    >>> y = attention(x)
    >>> y.shape
    torch.Size([2, 6, 16])
    >>> changed = x.clone()
    >>> changed[:, 3:] = torch.randn(2, 3, 16)  # new positions 3, 4 and 5
    >>> y_changed = attention(changed)
    >>> torch.allclose(y_changed[:, :3], y[:, :3])  # positions 0..2 see only 0..2
    True
    >>> torch.allclose(y_changed[:, 3:], y[:, 3:])
    False
    """

    def __init__(self, width, n_heads):
        super().__init__()
        if width % n_heads:
            raise ValueError(f"width {width} must be a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = (part.reshape(batch, length, self.n_heads, -1).transpose(1, 2)
                   for part in self.qkv(x).chunk(3, dim=-1))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.models import Block, device_layer
    >>> _ = torch.manual_seed(0)
    >>> block = Block(16, 4, 64, up=torch.nn.Linear(16, 64), down=device_layer("slm", 64, 16))
    >>> x = torch.randn(2, 5, 16)
    >>> block(x).shape
    torch.Size([2, 5, 16])
    >>> digital = Block(16, 4, 64, up=torch.nn.Linear(16, 64), down=torch.nn.Linear(64, 16))
    >>> for last in (digital.attention.out, digital.down):  # both branches answer zero
    ...     _ = torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
    >>> torch.equal(digital(x), x)  # leaving the residual stream
    True
    """

    def __init__(self, width, n_heads, mlp_width, up, down):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, n_heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.up, self.down = up, down
        self.activation = nn.GELU()

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.down(self.activation(self.up(self.mlp_norm(x))))


class CharTransformer(nn.Module):
    """A character-level GPT whose MLP blocks contain physical devices.

    Parameters
    ----------
    vocabulary_size : int
        Number of symbols.
    context : int
        Longest sequence (the position embedding's length).
    width : int, default=128
        Model width d.
    n_heads : int, default=4
        Attention heads (d must be a multiple).
    n_layers : int, default=4
        Transformer blocks.
    mlp_ratio : int, default=4
        The MLP's hidden width is ``mlp_ratio * d``.
    device : None, str or callable, optional
        The device of every block's MLP, see :func:`device_layer`; None is all-digital.
    device_maps : sequence of {"up", "down"}, default=("down",)
        Which MLP projections are devices: the up-projection (d -> ratio d), the
        down-projection (ratio d -> d), or both.
    device_options, layer_options : dict, optional
        Passed to :func:`device_layer`.
    last_token : bool, default=False
        Return the logits of the last position only, (batch, vocabulary_size): what
        ``HybridNetClassifier(module=...)`` needs to predict the next character of a window.
        Otherwise (batch, length, vocabulary_size), for a loss at every position.
    seed : int, default=0
        Root seed of the devices (digital layers follow torch's global RNG).

    Examples
    --------
    >>> import torch
    >>> from hybridnet import BlackBoxLayer
    >>> from hybridnet.models import CharTransformer
    >>> model = CharTransformer(30, 16, width=32, n_layers=2, device="slm")
    >>> model(torch.randint(0, 30, (5, 16))).shape
    torch.Size([5, 16, 30])
    >>> sum(isinstance(m, BlackBoxLayer) for m in model.modules())  # one per block
    2
    """

    def __init__(self, vocabulary_size, context, width=128, n_heads=4, n_layers=4,
                 mlp_ratio=4, *, device=None, device_maps=("down",), device_options=None,
                 layer_options=None, last_token=False, seed=0):
        super().__init__()
        for name, value in (("vocabulary_size", vocabulary_size), ("context", context),
                            ("width", width), ("n_heads", n_heads), ("n_layers", n_layers),
                            ("mlp_ratio", mlp_ratio)):
            _check_int(name, value)
        maps = tuple(device_maps)
        if not maps or not set(maps) <= set(DEVICE_MAPS):
            raise ValueError(f"device_maps must name some of {DEVICE_MAPS}, got {device_maps!r}")
        self.context, self.last_token = context, last_token
        self.token_embedding = nn.Embedding(vocabulary_size, width)
        self.position_embedding = nn.Embedding(context, width)
        mlp_width = mlp_ratio * width
        seeds = spawn_seeds(seed, 2 * n_layers)
        options = dict(device_options=device_options, layer_options=layer_options)
        blocks = []
        for index in range(n_layers):
            up = device_layer(device if "up" in maps else None, width, mlp_width,
                              seed=seeds[2 * index], **options)
            down = device_layer(device if "down" in maps else None, mlp_width, width,
                                seed=seeds[2 * index + 1], **options)
            blocks.append(Block(width, n_heads, mlp_width, up, down))
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocabulary_size)

    def forward(self, tokens):
        """Logits for ``tokens`` (batch, length) of symbol indices (any numeric dtype)."""
        tokens = tokens.long()
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(f"sequences of {length} symbols exceed the context of "
                             f"{self.context}")
        positions = torch.arange(length, device=tokens.device)
        h = self.blocks(self.token_embedding(tokens) + self.position_embedding(positions))
        if self.last_token:
            h = h[:, -1]
        return self.head(self.norm(h))


def _conv_stage(in_channels, channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.MaxPool2d(2))


class ChannelMix(nn.Module):
    """A 1x1 convolution as a map over the channels of each pixel, (B, C, H, W) -> (B, C', H, W).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.models import ChannelMix, device_layer
    >>> _ = torch.manual_seed(0)
    >>> linear = torch.nn.Linear(8, 4)
    >>> x = torch.randn(2, 8, 5, 5)
    >>> ChannelMix(linear)(x).shape
    torch.Size([2, 4, 5, 5])
    >>> conv = torch.nn.functional.conv2d(x, linear.weight[:, :, None, None], linear.bias)
    >>> torch.allclose(ChannelMix(linear)(x), conv, atol=1e-6)
    True
    >>> mix = ChannelMix(device_layer("mrr", 8, 8, gain=False))
    >>> mix(x).shape, mix.layer.device_queries()  # one query per pixel: 2 * 5 * 5
    (torch.Size([2, 8, 5, 5]), 50)
    """

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.movedim(1, -1)).movedim(-1, 1)


class _BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that also trains on a batch of one sample.

    A batch's own statistics are undefined for one sample (PyTorch raises); such a batch, as
    the last of an epoch can be, is normalised with the running statistics instead, which it
    leaves unchanged.
    """

    def forward(self, x):
        if self.training and x.shape[0] == 1:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var,
                                            self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class SmallCNN(nn.Module):
    """A small CNN whose classifier (and optionally channel mixing) is a physical device.

    Conv stages (two 3x3 convolutions with batch norm and ReLU, then 2x2 max pooling), then
    the classifier ``Linear -> ReLU -> LayerNorm -> map -> BatchNorm -> ReLU -> Linear`` whose
    hidden-to-hidden map is the device (``nn.Linear`` all-digital). The norms centre the
    device's inputs and outputs: without them a device fed positive activations answers with
    one large common mode and trains far slower (Fashion-MNIST MRR 0.61 instead of 0.90 after
    2 epochs of 20,000 images).

    Parameters
    ----------
    image_shape : tuple of int, default=(1, 28, 28)
        (channels, height, width) of one image; inputs may come flat, (batch, C * H * W), as
        scikit-learn passes them, or as (batch, C, H, W).
    n_classes : int, default=10
        Outputs.
    channels : sequence of int, default=(32, 64)
        Channels of each convolution stage (each halves the height and width).
    hidden : int, default=64
        Width of the classifier's hidden layers; the device maps hidden -> hidden.
    device : None, str or callable, optional
        The classifier's device, see :func:`device_layer`; None is all-digital.
    mix_device : bool, default=False
        Also make the 1x1 channel-mixing map after the last stage a device (it sees every
        pixel of every image: H * W vectors per image).
    device_options, layer_options : dict, optional
        Passed to :func:`device_layer`.
    seed : int, default=0
        Root seed of the devices.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.models import SmallCNN
    >>> model = SmallCNN((1, 8, 8), channels=(8,), hidden=16, device="mrr")
    >>> model(torch.randn(4, 64)).shape
    torch.Size([4, 10])
    """

    def __init__(self, image_shape=(1, 28, 28), n_classes=10, channels=(32, 64), hidden=64, *,
                 device=None, mix_device=False, device_options=None, layer_options=None,
                 seed=0):
        super().__init__()
        image_shape = tuple(_check_int("image_shape entries", v) for v in image_shape)
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got "
                             f"{image_shape!r}")
        channels = tuple(_check_int("channels entries", c) for c in channels)
        _check_int("n_classes", n_classes)
        _check_int("hidden", hidden)
        self.image_shape = image_shape
        stages, previous = [], image_shape[0]
        for count in channels:
            stages.append(_conv_stage(previous, count))
            previous = count
        self.features = nn.Sequential(*stages)
        mix_seed, classifier_seed = spawn_seeds(seed, 2)
        options = dict(device_options=device_options, layer_options=layer_options)
        self.mix = (ChannelMix(device_layer(device, previous, previous, seed=mix_seed, **options))
                    if mix_device and device is not None else nn.Identity())
        height, width = (size // 2 ** len(channels) for size in image_shape[1:])
        if height < 1 or width < 1:
            raise ValueError(f"{len(channels)} stages halve {image_shape[1:]} to nothing; use "
                             "fewer channels entries")
        # Positive inputs (after a ReLU) and mostly positive weights (an MRR's lie in about
        # [-0.29, 0.98]) give one large common mode; the norms around the map remove it.
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * height * width, hidden), nn.ReLU(),
            nn.LayerNorm(hidden),
            device_layer(device, hidden, hidden, seed=classifier_seed, **options),
            _BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x):
        """Logits (batch, n_classes) for images (batch, C, H, W) or flat (batch, C * H * W)."""
        if x.dim() == 2:
            if x.shape[1] != math.prod(self.image_shape):
                raise ValueError(f"flat images must have {math.prod(self.image_shape)} features "
                                 f"for image_shape {self.image_shape}, got {x.shape[1]}")
            x = x.reshape(-1, *self.image_shape)
        return self.classifier(self.mix(self.features(x)))
