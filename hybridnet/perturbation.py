"""Losses at many coordinate perturbations of a layered network, computed from its structure.

A coordinate (CGE) step asks for the loss at ``theta +- mu e_c`` for thousands of coordinates
c. On hardware each is one forward pass; in simulation almost all of that work repeats. For a
network that is an ``nn.Sequential`` of ``nn.Linear`` / :class:`~hybridnet.TTLinear` layers and
elementwise activations (what :func:`hybridnet.network.build_mlp` makes), these identities give
the same values, to rounding, at a fraction of the cost:

- **prefix reuse**: a perturbation of layer k leaves the activations before it unchanged; they
  are computed once per step;
- **one weight or bias entry** of a dense layer changes one output unit: ``dz_i = mu a_j``
  (bias: ``dz_i = mu``);
- **one TT-core entry** ``G_k[a, i, j, b]``: ``W`` is linear in each core, so the layer's
  output changes by ``mu * sum L_k[.., a] x[..] R_k[b, ..]`` (``L_k``, ``R_k`` the products of
  the cores before and after k) on the outputs whose k-th index is ``i`` only; contracting the
  input with ``L_k`` and ``R_k`` once per step gives every entry's change as a slice;
- **a change confined to some units** reaches the next linear layer through those columns only:
  ``dz' = W'[:, U] (s(z_U + dz_U) - s(z_U))``, after which the rest of the network runs batched
  over the perturbations.

The perturbed activations are written into reused buffers (:class:`Workspace`), and the
losses of all perturbations of a call are computed together from their outputs, in as few
batched calls of the loss as memory allows (a PINN loss, with its derivative estimates from
thousands of shifted points, has a large cost per call).

The device phases of a :class:`~hybridnet.BlackBoxLayer` still reuse the prefix: the network
from that layer on is evaluated at every perturbed point in one vectorised call. Networks of
any other form (other layer types, tied weights, several inputs) fall back to evaluating the
whole network at every point. Either way each perturbed loss counts as one evaluation, as it
would on hardware.
"""

import math

import torch
from torch import nn
from torch.func import functional_call

from .layers import BlackBoxLayer
from .network import Sine
from .tensor_train import tt_matmul, tt_to_dense
from .tt_linear import TTLinear

# Parameterless modules that act elementwise: a change confined to some units stays there.
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.GELU, nn.SiLU, nn.ELU,
               nn.LeakyReLU, nn.Softplus, Sine)
# Numbers (floats) one chunk of perturbations may hold at once.
MEMORY_BUDGET = 2**25


def _tanh_(value):
    """``tanh`` in place; in float64 on the CPU as ``2 sigmoid(2 x) - 1``.

    torch's float64 tanh is not vectorised on the CPU (about 5 ns an element here, sigmoid 1.5
    ns), and it is most of a PINN's coordinate step: every perturbed hidden unit over thousands
    of shifted points. The identity is exact; its rounding differs from ``torch.tanh`` by at
    most a few 1e-16 (absolute), well inside what the sparse grid's own rounding allows.
    """
    if value.dtype == torch.float64 and value.device.type == "cpu":
        return value.mul_(2).sigmoid_().mul_(2).sub_(1)
    return value.tanh_()


# In-place forms of common activations: in a batched forward over many parameter points the
# activations are the largest tensors of a step, and a fresh one per layer costs about as much
# as the matrix product that made it.
IN_PLACE = {Sine: torch.Tensor.sin_, nn.Tanh: _tanh_, nn.ReLU: torch.Tensor.relu_,
            nn.Sigmoid: torch.Tensor.sigmoid_}


def _is_elementwise(module):
    return isinstance(module, ELEMENTWISE)


def _in_place(module):
    """Whether ``module`` writes its output into its input (``nn.ReLU(inplace=True)``)."""
    return bool(getattr(module, "inplace", False))


def _is_layered(module, inputs, layer_types):
    """An ``nn.Sequential`` of ``layer_types`` and elementwise modules, one (B, features)
    input, no parameter shared between two layers (a tied weight changes two layers at once).
    """
    if not (isinstance(module, nn.Sequential) and len(inputs) == 1
            and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() == 2):
        return False
    if not all(isinstance(layer, layer_types) or _is_elementwise(layer) for layer in module):
        return False
    owned = [id(p) for layer in module for p in layer.parameters()]
    return len(owned) == len(set(owned))


def supports_batched_forward(module, inputs):
    """Whether :func:`batched_forward` understands ``module`` and ``inputs``.

    An ``nn.Sequential`` of ``nn.Linear``, :class:`~hybridnet.TTLinear` and elementwise
    activations with one (B, features) input and no tied parameters.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from hybridnet.perturbation import supports_batched_forward
    >>> inputs = (torch.zeros(5, 3),)
    >>> supports_batched_forward(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)),
    ...                          inputs)
    True
    >>> supports_batched_forward(nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=1)),
    ...                          inputs)  # Softmax mixes the units: not elementwise
    False
    >>> tied = nn.Linear(3, 3)
    >>> supports_batched_forward(nn.Sequential(tied, nn.ReLU(), tied), inputs)
    False
    """
    return _is_layered(module, inputs, nn.Linear | TTLinear)


class Workspace:
    """Output buffers that :func:`batched_forward` reuses from one call to the next.

    A batched forward over many parameter points writes tensors of hundreds of megabytes (a
    PINN loss: 20 perturbations x 18,500 shifted points x 128 units in float64 is 380 MB).
    Fresh memory of that size is mapped page by page on first touch, which on CPU costs about
    half as much as the matrix product that fills it; writing into the buffers of the previous
    step avoids it. Each layer has its buffer (a slot), reallocated when its shape changes.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.perturbation import Workspace
    >>> workspace = Workspace()
    >>> first = workspace.buffer(0, (2, 3), torch.zeros(1))
    >>> workspace.buffer(0, (2, 3), torch.zeros(1)) is first
    True
    """

    def __init__(self):
        self._buffers = {}
        self._storage = {}

    def buffer(self, slot, shape, like):
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device, reused when the
        previous request for ``slot`` matched.

        A smaller request (the last chunk of a batch) is a view of the slot's memory, so
        alternating chunk sizes do not map fresh memory each time.
        """
        shape = torch.Size(shape)
        buffer = self._buffers.get(slot)
        if buffer is not None and buffer.shape == shape and buffer.dtype == like.dtype \
                and buffer.device == like.device:
            return buffer
        storage = self._storage.get(slot)
        if storage is None or storage.numel() < shape.numel() or storage.dtype != like.dtype \
                or storage.device != like.device:
            storage = self._storage[slot] = torch.empty(shape.numel(), dtype=like.dtype,
                                                        device=like.device)
        buffer = self._buffers[slot] = storage[:shape.numel()].view(shape)
        return buffer


def _batched_affine(layer, own, value, out):
    """``layer`` on ``value`` ((B, in) or (P, B, in)) with its parameters from ``own`` where
    given there, (P, *shape), and its own otherwise; ``out(shape)`` gives the output buffer."""
    bias = own.get("bias", layer.bias)
    weight = own.get("weight", layer.weight) if isinstance(layer, nn.Linear) else None
    if isinstance(layer, TTLinear):
        cores = [own.get(f"cores.{k}", core) for k, core in enumerate(layer.cores)]
        core_dims = [0 if f"cores.{k}" in own else None for k in range(len(cores))]
        perturbed = any(dim is not None for dim in core_dims)
        if value.shape[-2] >= layer._dense_from_rows:  # assembling W per point pays off
            weight = torch.vmap(tt_to_dense, in_dims=(core_dims,))(cores) if perturbed \
                else layer.to_dense()
        elif perturbed:
            value_dim = 0 if value.dim() == 3 else None
            output = torch.vmap(tt_matmul, in_dims=(core_dims, value_dim))(cores, value)
        else:
            rows = tt_matmul(list(cores), value.reshape(-1, value.shape[-1]))
            output = rows.reshape(*value.shape[:-1], layer.out_features)
    if weight is not None:
        shape = torch.broadcast_shapes(value.shape[:-2], weight.shape[:-2]) + (
            value.shape[-2], weight.shape[-2])
        output = torch.matmul(value, weight.mT, out=out(shape))
    if bias is not None:
        bias = bias.unsqueeze(-2) if bias.dim() == 2 else bias
        output = output.add_(bias) if output.dim() >= bias.dim() else output + bias
    return output


@torch.no_grad()
def batched_forward(module, stacked, x, workspace=None):
    """``module(x)`` at P parameter points at once, from the network's structure.

    Each perturbed weight matrix is assembled once per point (TT layers whenever that beats
    contracting the batch, see :class:`~hybridnet.TTLinear`) and the batch goes through every
    point's layer in one batched matrix product; activations are applied in place. The values
    equal ``torch.vmap`` over ``torch.func.functional_call`` to rounding, with about half its
    time and memory traffic on wide batches (PINN losses push thousands of shifted points).

    Parameters
    ----------
    module : torch.nn.Sequential
        See :func:`supports_batched_forward`.
    stacked : dict of str to torch.Tensor
        Parameter values by ``named_parameters`` name, each ``(P, *shape)``; parameters not in it
        keep their value at every point.
    x : torch.Tensor
        The batch, (B, in_features), the same at every point.
    workspace : Workspace, optional
        Buffers to write the layers' outputs into (reused across calls); the result then lives
        in the workspace until the next call.

    Returns
    -------
    torch.Tensor
        Shape (P, B, out_features).

    Examples
    --------
    >>> import torch
    >>> from hybridnet.perturbation import batched_forward
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    >>> weights = torch.randn(5, 4, 3)
    >>> x = torch.randn(6, 3)
    >>> out = batched_forward(model, {"0.weight": weights}, x)
    >>> expected = torch.func.functional_call(model, {"0.weight": weights[2]}, (x,))
    >>> out.shape, torch.allclose(out[2], expected, atol=1e-6)
    (torch.Size([5, 6, 1]), True)
    """
    count = len(next(iter(stacked.values())))
    value, owned = x, False  # owned: value was made here, so it may be changed in place
    for index, layer in enumerate(module):
        prefix = f"{index}."
        own = {name[len(prefix):]: point for name, point in stacked.items()
               if name.startswith(prefix)}
        if isinstance(layer, nn.Linear | TTLinear):
            out = (lambda shape, slot=index: workspace.buffer(slot, shape, x)) \
                if workspace is not None else (lambda shape: None)
            value, owned = _batched_affine(layer, own, value, out), True
        elif owned and type(layer) in IN_PLACE:
            value = IN_PLACE[type(layer)](value)
        else:  # an in-place module must not write into the caller's x
            value, owned = layer(value if owned or not _in_place(layer) else value.clone()), True
    return value.expand(count, *value.shape[-2:]) if value.dim() == 2 else value


def _dense_weight(layer):
    return layer.to_dense() if isinstance(layer, TTLinear) else layer.weight


def _core_products(cores, k):
    """``L`` (m_<k, n_<k, r_{k-1}) and ``R`` (r_k, m_>k, n_>k), the cores before and after k."""
    like = cores[0]
    left = like.new_ones(1, 1, 1)
    for core in cores[:k]:
        rows, cols, _ = left.shape
        _, m, n, rank = core.shape
        left = torch.einsum("MNr,rmnR->MmNnR", left, core).reshape(rows * m, cols * n, rank)
    right = like.new_ones(1, 1, 1)
    for core in reversed(cores[k + 1:]):
        rank, m, n, _ = core.shape
        _, rows, cols = right.shape
        right = torch.einsum("rmnR,RMN->rmMnN", core, right).reshape(rank, m * rows, n * cols)
    return left, right


def _tt_core_factors(cores, x, k):
    """The two factors of every core-k entry's response (see :func:`tt_core_responses`).

    ``front`` (B, m_<k, r_{k-1}, n_k, n_>k) is the input contracted with the cores before k,
    ``right`` (r_k, m_>k, n_>k) the product of the cores after it; together they hold what the
    full response tensor holds at a fraction of its size (no factor r_k M / m_k).
    """
    in_modes = [core.shape[2] for core in cores]
    left, right = _core_products(cores, k)
    n_front, n_back = math.prod(in_modes[:k]), math.prod(in_modes[k + 1:])
    inputs = x.reshape(len(x), n_front, in_modes[k], n_back)
    return torch.einsum("bpjq,ipa->biajq", inputs, left), right


def _output_units(cores, k, device):
    """(m_k, M / m_k): the flat output indices whose k-th index is i, per i."""
    out_modes = [core.shape[1] for core in cores]
    m_front, m_k, m_back = math.prod(out_modes[:k]), out_modes[k], math.prod(out_modes[k + 1:])
    fronts = torch.arange(m_front, device=device).view(m_front, 1)
    backs = torch.arange(m_back, device=device).view(1, m_back)
    units = torch.stack([(fronts * m_k + i) * m_back + backs for i in range(m_k)])
    return units.reshape(m_k, m_front * m_back)


def _entry_responses(front, right, a, j, b, scale=1.0):
    """``scale`` times the responses of the core entries ``(a, *, j, b)`` (index tensors),
    (len(a), B, M / m_k); one gathered copy of the input factor and the product."""
    batch, m_front, _, _, n_back = front.shape
    chosen = front.permute(2, 3, 0, 1, 4)[a, j].reshape(len(a), batch * m_front, n_back)
    responses = torch.bmm(chosen, scale * right[b].transpose(1, 2))
    return responses.reshape(len(a), batch, -1)


def tt_core_responses(cores, x, k, entries=None):
    """How a TT layer's output responds to each entry of core k.

    Parameters
    ----------
    cores : sequence of torch.Tensor
        The layer's cores, core l of shape ``(r_{l-1}, m_l, n_l, r_l)``.
    x : torch.Tensor
        Layer input, shape (B, N).
    k : int
        The core.
    entries : tuple of three torch.Tensor, optional
        Index tensors ``(a, j, b)`` of equal length C: return the responses of those entries
        only, (C, B, M / m_k). The full tensor holds ``r_{k-1} n_k r_k B M / m_k`` numbers (650
        MB for a rank-8 256 x 256 layer at batch 4096), so callers that need many entries ask
        for them in chunks.

    Returns
    -------
    responses : torch.Tensor
        Shape ``(r_{k-1}, n_k, r_k, B, M / m_k)`` (or (C, B, M / m_k) for ``entries``):
        ``responses[a, j, b]`` is the change of the outputs ``x @ W.T`` whose k-th index is i,
        per unit change of ``G_k[a, i, j, b]`` (the same for every i), over the outputs in
        row-major order of their other indices.
    units : torch.Tensor
        Shape ``(m_k, M / m_k)``: the flat output indices those columns stand for, per i.

    Examples
    --------
    >>> import torch
    >>> from hybridnet.tensor_train import tt_to_dense
    >>> cores = [torch.randn(1, 2, 3, 2, dtype=torch.float64),
    ...          torch.randn(2, 4, 5, 1, dtype=torch.float64)]
    >>> x = torch.randn(7, 15, dtype=torch.float64)
    >>> responses, units = tt_core_responses(cores, x, 1)
    >>> bumped = [core.clone() for core in cores]
    >>> bumped[1][1, 3, 2, 0] += 1.0
    >>> change = x @ (tt_to_dense(bumped) - tt_to_dense(cores)).T
    >>> torch.allclose(change[:, units[3]], responses[1, 2, 0])
    True
    >>> chosen, _ = tt_core_responses(cores, x, 1, entries=(torch.tensor([1]),
    ...                                                     torch.tensor([2]), torch.tensor([0])))
    >>> torch.allclose(chosen[0], responses[1, 2, 0])
    True
    """
    cores = list(cores)
    front, right = _tt_core_factors(cores, x, k)
    units = _output_units(cores, k, x.device)
    if entries is not None:
        return _entry_responses(front, right, *entries), units
    r_in, n_k, r_out = front.shape[2], front.shape[3], right.shape[0]
    a, j, b = (index.flatten() for index in torch.meshgrid(
        torch.arange(r_in), torch.arange(n_k), torch.arange(r_out), indexing="ij"))
    responses = _entry_responses(front, right, a, j, b)
    return responses.reshape(r_in, n_k, r_out, len(x), -1), units


class CoordinateEvaluator:
    """Losses of ``loss_fn(module(inputs), *targets)`` at ``theta + step e_c`` for coordinates c.

    Built once per step (it runs the unperturbed forward pass and keeps every activation);
    :meth:`evaluate` then answers any set of coordinates of the flat parameter vector made by
    concatenating ``params``.

    Parameters
    ----------
    module : torch.nn.Sequential
        The network (see the module docstring for what is recognised).
    loss_fn : callable
        ``loss_fn(output, *targets) -> scalar``.
    inputs : torch.Tensor
        The batch, (B, in_features).
    targets : tuple
        Extra arguments of ``loss_fn``.
    params : sequence of torch.nn.Parameter
        The parameters, in the order of the flat vector the coordinates index.
    workspace : Workspace, optional
        Buffers for the perturbed activations, reused across calls (and across evaluators when
        one workspace is passed to each step's evaluator). A PINN loss propagates each
        coordinate's change over thousands of shifted points; writing into reused buffers, with
        the activations applied in place, avoids mapping fresh memory for every chunk.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from hybridnet.perturbation import CoordinateEvaluator
    >>> generator = torch.Generator().manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    >>> x = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    >>> target = torch.zeros(6, 1, dtype=torch.float64)
    >>> params = list(model.parameters())  # 12 + 4 + 4 + 1 = 21 coordinates
    >>> CoordinateEvaluator.supports(model, (x,))
    True
    >>> evaluator = CoordinateEvaluator(model, nn.functional.mse_loss, x, (target,), params)
    >>> values = evaluator.evaluate(torch.arange(21), 1e-3)
    >>> values.shape
    torch.Size([21])
    >>> with torch.no_grad():  # coordinate 5 is the first layer's weight[1, 2]
    ...     model[0].weight[1, 2] += 1e-3
    ...     expected = nn.functional.mse_loss(model(x), target)
    >>> bool(torch.isclose(values[5], expected))
    True
    """

    def __init__(self, module, loss_fn, inputs, targets, params, workspace=None):
        self.layers = list(module)
        self.workspace = Workspace() if workspace is None else workspace
        self.loss_fn = loss_fn
        self.targets = targets
        self.params = list(params)
        self.activations = [inputs]
        with torch.no_grad():
            for layer in self.layers:
                # An in-place module (ReLU(inplace=True)) would overwrite the stored activation
                # it reads, making the pre- and post-activation one tensor.
                value = self.activations[-1]
                self.activations.append(layer(value.clone() if _in_place(layer) else value))
        self._owner = {}
        for index, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                self._owner[id(p)] = (index, name)
        self._core_factors = {}
        self._rows = {}
        widest = max(a.shape[-1] for a in self.activations)
        self._chunk = max(1, MEMORY_BUDGET // (len(inputs) * widest))

    @staticmethod
    def supports(module, inputs):
        """Whether ``module`` and ``inputs`` have the form this evaluator understands.

        An ``nn.Sequential`` of ``nn.Linear``, :class:`~hybridnet.TTLinear`,
        :class:`~hybridnet.BlackBoxLayer` and elementwise activations, no parameter shared
        between two layers (a tied weight changes two layers at once), one (B, features)
        input.
        """
        return _is_layered(module, inputs, nn.Linear | TTLinear | BlackBoxLayer)

    def _unit_rows(self, index):
        """Activation ``index`` unit by unit, (features, B), contiguous: gathering the units a
        perturbation changes copies whole rows. Made once per evaluator; a PINN step gathers
        them for every group of coordinates, over thousands of shifted points."""
        if index not in self._rows:
            self._rows[index] = self.activations[index].T.contiguous()
        return self._rows[index]

    def _weight_rows(self, index):
        """``W.T`` (in, out) of linear layer ``index``, contiguous (a TT layer's assembled once
        per evaluator): its rows are the columns a change of some input units goes through."""
        if ("weight", index) not in self._rows:
            self._rows["weight", index] = _dense_weight(self.layers[index]).T.contiguous()
        return self._rows["weight", index]

    def _buffer(self, slot, shape):
        # Slots of their own: a BatchedLoss shares its workspace with batched_forward's slots.
        return self.workspace.buffer(("coordinates", slot), shape, self.activations[0])

    def _suffix(self, start, value):
        """Run layers ``start..`` on ``value`` (P, B, features), batched over P.

        ``value`` is the evaluator's own (a buffer or a fresh tensor), so activations run in
        place and linear layers write into the workspace.
        """
        for index in range(start, len(self.layers)):
            layer = self.layers[index]
            if isinstance(layer, nn.Linear | TTLinear):
                value = _batched_affine(layer, {}, value,
                                        lambda shape, slot=index: self._buffer(slot, shape))
            elif type(layer) in IN_PLACE:
                value = IN_PLACE[type(layer)](value)
            else:
                value = layer(value)
        return value

    @torch.no_grad()
    def evaluate(self, coordinates, step):
        """Loss at ``theta + step e_c`` for every flat coordinate c; shape (len(coordinates),).

        Parameters
        ----------
        coordinates : torch.Tensor
            Flat indices (long), any order.
        step : float
            The perturbation.

        Returns
        -------
        torch.Tensor
        """
        values = torch.empty(len(coordinates), dtype=self.activations[-1].dtype,
                             device=coordinates.device)
        queue = _LossQueue(lambda outputs: torch.vmap(
            lambda output: self.loss_fn(output, *self.targets))(outputs), values)
        offset = 0
        for p in self.params:
            inside = (coordinates >= offset) & (coordinates < offset + p.numel())
            positions = torch.nonzero(inside).flatten()
            # Chunks under the memory budget: each coordinate's change spans the batch.
            for part in positions.split(self._chunk) if len(positions) else ():
                self._queue_parameter(p, coordinates[part] - offset, step, part, queue)
            offset += p.numel()
        queue.flush()
        return values

    def _queue_parameter(self, p, local, step, positions, queue):
        """Queue the outputs at ``theta + step e_c`` for the entries ``local`` of ``p``; their
        losses belong at ``positions``."""
        if id(p) not in self._owner:
            raise ValueError("the optimizer holds a parameter that is not in the module of "
                             "this BatchedLoss")
        index, name = self._owner[id(p)]
        layer = self.layers[index]
        if isinstance(layer, nn.Linear | TTLinear) and name == "bias":
            self._queue_sparse(index, local.view(-1, 1), None, step, positions, queue)
        elif isinstance(layer, nn.Linear) and name == "weight":
            units, columns = local // layer.in_features, local % layer.in_features
            self._queue_sparse(index, units.view(-1, 1), columns, step, positions, queue)
        elif isinstance(layer, TTLinear) and name.startswith("cores."):
            self._queue_core(index, int(name.split(".")[1]), local, step, positions, queue)
        elif isinstance(layer, BlackBoxLayer) and name == "params":
            self._queue_device(index, local, step, positions, queue)
        else:
            self._queue_prefix(index, name, p, local, step, positions, queue)

    def _core_factors_of(self, index, k):
        """Core k of layer ``index``: its two response factors, output units and, when they fit
        in a quarter of the memory budget, the responses of all its entries.

        An entry's response does not depend on its output index i (only which units it reaches
        does), so the m_k entries that share ``(a, j, b)`` and both signs of a central
        difference all read one slice; a PINN loss's thousands of shifted points make
        recomputing it per output mode the larger part of a core's cost.
        """
        if (index, k) not in self._core_factors:
            cores = list(self.layers[index].cores)
            front, right = _tt_core_factors(cores, self.activations[index], k)
            units = _output_units(cores, k, front.device)
            r_in, _, n_k, r_out = cores[k].shape
            responses = None
            if r_in * n_k * r_out * len(front) * units.shape[1] <= MEMORY_BUDGET // 4:
                a, j, b = (grid.flatten() for grid in torch.meshgrid(
                    torch.arange(r_in), torch.arange(n_k), torch.arange(r_out), indexing="ij"))
                responses = _entry_responses(front, right, a, j, b)  # entry (a, j, b) flat
            self._core_factors[index, k] = front, right, units, responses
        return self._core_factors[index, k]

    def _queue_core(self, index, k, local, step, positions, queue):
        front, right, unit_table, responses = self._core_factors_of(index, k)
        r_in, m_k, n_k, r_out = self.layers[index].cores[k].shape
        a = local // (m_k * n_k * r_out)
        i = local // (n_k * r_out) % m_k
        j = local // r_out % n_k
        b = local % r_out
        # Responses in chunks under the memory budget: all of a core's at once can take
        # hundreds of MB (r_{k-1} n_k r_k B M / m_k numbers).
        batch, width = len(front), unit_table.shape[1]
        # Half the budget: the propagation of each chunk holds as much again.
        chunk = max(1, MEMORY_BUDGET // (2 * batch * (width + front.shape[1] * front.shape[4])))
        for output_mode in range(m_k):  # coordinates that change the same output units
            chosen = torch.nonzero(i == output_mode).flatten()
            for part in chosen.split(chunk) if len(chosen) else ():
                if responses is None:
                    changes = _entry_responses(front, right, a[part], j[part], b[part], step)
                else:  # a gathered copy, the evaluator's own
                    entries = (a[part] * n_k + j[part]) * r_out + b[part]
                    changes = responses.index_select(0, entries).mul_(step)
                self._propagate(index, unit_table[output_mode], changes, positions[part], queue)

    def _queue_sparse(self, index, units, columns, step, positions, queue):
        """Dense-layer entries: bias (``columns`` None) or weight ``[unit, column]``."""
        batch = len(self.activations[index])
        if columns is None:
            changes = self.activations[index].new_full((len(units), batch, 1), step)
        else:
            changes = step * self.activations[index].T[columns].unsqueeze(-1)
        self._propagate(index, units, changes, positions, queue)

    def _propagate(self, index, units, changes, positions, queue):
        """Queue the outputs when layer ``index``'s output changes by ``changes`` (P, B, u) on
        ``units``.

        ``units`` is (P, u), or (u,) when every perturbation changes the same units (a TT
        core's entries of one output mode): their activations and weights are then gathered
        once and the next layer's change is one matrix product.
        """
        count, batch, width = changes.shape
        after = index + 1
        while after < len(self.layers) and _is_elementwise(self.layers[after]):
            after += 1
        sparse = after < len(self.layers) and isinstance(self.layers[after],
                                                         nn.Linear | TTLinear)
        widest = max(a.shape[-1] for a in self.activations[index + 1:])
        per_point = batch * (2 * width + widest) + (widest * width if sparse else 0)
        chunk = max(1, MEMORY_BUDGET // per_point)
        if sparse:
            pre_rows, post_rows = self._unit_rows(index + 1), self._unit_rows(after)
            weight_rows = self._weight_rows(after)
        shared = units.dim() == 1
        if shared and sparse:  # gathered once for the whole group
            gathered = pre_rows[units].T, post_rows[units].T, weight_rows[units]
        for start in range(0, count, chunk):
            delta = changes[start:start + chunk]
            part = units.expand(len(delta), -1) if shared else units[start:start + chunk]
            if sparse:
                pre, post, columns = gathered if shared else (
                    pre_rows[part].transpose(1, 2), post_rows[part].transpose(1, 2),
                    weight_rows[part])
                output = self._through_next_layer(index, after, pre, post, columns, delta)
            else:
                before = self.activations[index + 1]
                output = self._buffer(("changed", index), (len(part), *before.shape))
                output.copy_(before.expand(len(part), -1, -1))
                output.scatter_add_(2, part.unsqueeze(1).expand(-1, batch, -1), delta)
                output = self._suffix(index + 1, output)
            queue.add(positions[start:start + chunk], output)

    def _through_next_layer(self, index, after, pre, post, columns, changes):
        """``dz' = W'[:, U] (s(z_U + dz_U) - s(z_U))``, then the rest of the network: the
        outputs, (P, B, out).

        ``pre`` and ``post`` are the units' values before and after the activations, ``columns``
        ``W'[:, U]`` transposed: (B, u), (B, u), (u, out) shared by all perturbations, or
        (P, B, u), (P, B, u), (P, u, out) per perturbation. ``changes`` (P, B, u) is the
        evaluator's own and is overwritten.
        """
        shifted = changes.add_(pre)
        for layer in self.layers[index + 1:after]:
            shifted = IN_PLACE[type(layer)](shifted) if type(layer) in IN_PLACE \
                else layer(shifted)
        difference = shifted.sub_(post)
        unchanged = self.activations[after + 1]
        # z' + dz' in one buffer: with thousands of shifted points per perturbation the
        # (P, B, out) tensors, not the small products, set the cost.
        change = self._buffer(("next", after), (len(difference), *unchanged.shape))
        if columns.dim() == 2:
            torch.matmul(difference, columns, out=change)
        elif columns.shape[1] == 1:  # one unit: an outer product, no reduction
            torch.mul(difference, columns, out=change)
        else:
            torch.bmm(difference, columns, out=change)
        return self._suffix(after + 1, change.add_(unchanged))

    def _queue_device(self, index, local, step, positions, queue):
        """Device parameters: a coordinate-wise request of the device (which a simulator with
        structure answers without propagating each setting), then the rest of the network."""
        layer, inputs = self.layers[index], self.activations[index]
        widest = max(a.shape[-1] for a in self.activations[index:])
        chunk = max(1, MEMORY_BUDGET // (len(inputs) * widest))
        for start in range(0, len(local), chunk):
            outputs = layer.query_device_coordinates(inputs, local[start:start + chunk], step)
            queue.add(positions[start:start + chunk], self._suffix(index + 1, outputs))

    def _queue_prefix(self, index, name, p, local, step, positions, queue):
        """Any other layer: perturb it in place of the whole network, from its input on."""
        suffix = nn.Sequential(*self.layers[index:])
        key = f"0.{name}"
        points = p.detach().reshape(1, -1).expand(len(local), -1).clone()
        points[torch.arange(len(local)), local] += step
        points = points.reshape(len(local), *p.shape)
        inputs = self.activations[index]

        def output_at(value):
            return functional_call(suffix, {key: value}, (inputs,))

        chunk = max(1, MEMORY_BUDGET // (len(inputs) * max(a.shape[-1]
                                                            for a in self.activations[index:])))
        for start in range(0, len(points), chunk):
            queue.add(positions[start:start + chunk],
                      torch.vmap(output_at)(points[start:start + chunk]))


class _LossQueue:
    """Outputs of perturbed networks waiting for their losses, which are computed together.

    One batched loss call per ``MEMORY_BUDGET / 4`` numbers of outputs instead of one per chunk
    of propagation: a PINN loss (derivative estimates from shifted points, several terms)
    costs milliseconds of overhead per call, and the outputs (P, B, out) are small beside the
    hidden activations that produced them.

    Parameters
    ----------
    loss_values : callable
        Outputs (P, B, out) to losses (P,).
    values : torch.Tensor
        Where the losses go, indexed by the positions given with the outputs.
    """

    def __init__(self, loss_values, values):
        self.loss_values = loss_values
        self.values = values
        self.pending = []
        self.size = 0

    def add(self, positions, outputs):
        """Queue ``outputs`` (copied: they may live in a reused buffer) for ``positions``."""
        self.pending.append((positions, outputs.clone()))
        self.size += outputs.numel()
        if self.size >= MEMORY_BUDGET // 4:
            self.flush()

    def flush(self):
        """Compute the queued losses and write them to their positions."""
        if self.pending:
            positions, outputs = (torch.cat(parts) for parts in zip(*self.pending, strict=True))
            self.values[positions] = self.loss_values(outputs)
            self.pending, self.size = [], 0
