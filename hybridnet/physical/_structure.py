"""Outputs of many local phase changes of one setting, from the device's column structure.

A mesh of MZIs (and a row of modulators) is a sequence of columns, each a set of small blocks
on disjoint modes: a 2 x 2 MZI, a 1 x 1 modulator. Changing the phases of blocks in one column
changes the output by ``S (T' - T) F`` summed over the changed blocks, where ``F`` is the field
entering the block's modes and ``S`` carries its output modes to the detected outputs; both
belong to the unchanged setting. With ``F`` and ``S`` of every block stored once (one
propagation of the batch and one of the output rows), each changed setting costs
O(batch x outputs) instead of a propagation through every column, O(batch x modes^2): the
field-reuse idea of in-situ photonic training (adjoint fields, Hughes et al., Optica 5, 864,
2018). Coordinate-wise zeroth-order estimates (CGE) ask exactly such requests: every setting is
the current one with one phase moved, and the phases it leaks into (thermal crosstalk) lie in
the same column.

A simulated device that declares its structure (``PhotonicDevice._site_layout``) answers
:meth:`~hybridnet.physical.BlackBox.query_coordinates` with :func:`local_change_outputs`. The
result is the same computation regrouped (equal to rounding), the noise draws are the same, and
every setting is still counted: a simulator answers faster, a chip would still be queried per
setting.
"""

import dataclasses

import torch

# Numbers (complex) of one chunk of per-change outputs: bounds the memory of a request of
# thousands of changed settings.
CHUNK_ELEMENTS = 2**22


@dataclasses.dataclass(frozen=True)
class SiteLayout:
    """Where a device's blocks ("sites") sit: fixed by its design.

    Attributes
    ----------
    phase_site : torch.Tensor
        (n_params,) long: the site each applied phase belongs to.
    site_column : torch.Tensor
        (n_sites,) long: the column of each site; the sites of one column act on disjoint modes.
    site_phases : torch.Tensor
        (n_sites, 2) long: the two applied phases of each site.
    """

    phase_site: torch.Tensor
    site_column: torch.Tensor
    site_phases: torch.Tensor


def local_change_outputs(layout, tables, blocks, reference, rows, phase_index, values,
                         n_settings, real_part):
    """Outputs of settings that each move a few applied phases of the reference setting.

    Parameters
    ----------
    layout : SiteLayout
    tables : tuple of torch.Tensor
        At the reference, for the request's shared inputs: ``fields`` (n_sites, batch, 2), the
        field entering each site's modes (a one-mode site's second mode zero); ``suffix``
        (n_sites, outputs, 2), the outputs' dependence on each site's output modes; ``output``
        (batch, outputs), the output field. All complex.
    blocks : callable
        ``blocks(sites, phases)`` -> (Q, 2, 2) complex: the transfer of sites ``sites`` (Q,)
        at their applied phases ``phases`` (Q, 2).
    reference : torch.Tensor
        The reference's applied phases, (n_params,).
    rows, phase_index, values : torch.Tensor
        (M,) each: setting ``rows[q]`` applies ``values[q]`` to phase ``phase_index[q]``; at
        most one entry per setting and phase.
    n_settings : int
        Settings in the request (one without an entry is the reference).
    real_part : bool
        Return only the real parts (what coherent detection reads), computed in real
        arithmetic: half the work and memory of the complex fields.

    Returns
    -------
    torch.Tensor or None
        (n_settings, batch, outputs), complex, or real with ``real_part``; None when a
        setting moves sites of two columns, whose changes do not add.
    """
    n_sites = len(layout.site_column)
    site_of_entry = layout.phase_site[phase_index]
    pairs, pair_of_entry = torch.unique(rows * n_sites + site_of_entry, return_inverse=True)
    pair_rows, sites = pairs // n_sites, pairs % n_sites  # ordered by setting
    column = layout.site_column[sites]
    lowest = torch.full((n_settings,), n_sites, dtype=column.dtype,
                        device=column.device).scatter_reduce(0, pair_rows, column, "amin")
    if bool((column != lowest[pair_rows]).any()):
        return None
    indices = layout.site_phases[sites]
    unmoved = reference[indices]
    moved = unmoved.clone()
    slot = (phase_index == layout.site_phases[site_of_entry, 1]).long()
    moved[pair_of_entry, slot] = values
    change = blocks(sites, moved) - blocks(sites, unmoved)
    fields, suffix, output = tables
    if real_part:
        output = output.real
    batch, n_outputs = output.shape
    # (F dT^T) S^T per moved site: the change of its two output modes, then their reach.
    local = fields[sites] @ change.transpose(1, 2)
    reach = suffix[sites].transpose(1, 2)
    if real_part:  # Re(l S) = Re(l) Re(S) - Im(l) Im(S): one real product with 4 terms
        local = torch.cat([local.real, -local.imag], -1)
        reach = torch.cat([reach.real, reach.imag], 1)
    if len(sites) == n_settings and bool(
            (pair_rows == torch.arange(n_settings, device=rows.device)).all()):
        # One site per setting (no crosstalk): each product goes straight to its setting.
        result = local.new_empty((n_settings, batch, n_outputs))
        torch.bmm(local, reach, out=result)
        return result.add_(output)
    result = output.expand(n_settings, -1, -1).clone()
    chunk = max(1, CHUNK_ELEMENTS // (batch * n_outputs))
    for start in range(0, len(sites), chunk):
        part = slice(start, start + chunk)
        result.index_add_(0, pair_rows[part], local[part] @ reach[part])
    return result
