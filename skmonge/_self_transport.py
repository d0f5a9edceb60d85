r"""Leave-one-out self-transport: the centring of the debiased entropic map.

The debiased map (:class:`~skmonge.EntropicSparseMap`, ``debias=True``)
subtracts the gradient average of the source sample transported onto
itself. On a finite sample that self-transport has a trivial solution: at an
ε below the cost between distinct points, every point is coupled with itself
at cost 0 (on single cells, whose pairwise costs are dominated by noise
shared by all pairs, at every useful ε). The self plan is then the identity,
its potential is a constant, and evaluated at a point of the sample the
centring average is the point itself: it cancels nothing.

So both the solve and its evaluation leave each point out of its own
average. The symmetric problem is solved without the diagonal,

.. math:: f_i = -ε \log \sum_{j \ne i} a_j \exp\big((f_j - C_{ij})/ε\big),

and a point to map that equals a sample point (found by a digest of its
non-zeros) leaves that one point out of :math:`q(x)`: a fitted cell is
mapped as the same cell held out of the sample would be. Exact duplicates
stay coupled with each other: leaving out all copies of a cell can make the
symmetric problem infeasible (a group of more than half of the sample, say
empty cells, would have nowhere to send its mass), while leaving out the
diagonal never does for two points or more. A duplicated cell is then
centred on its copies, as a held-out cell with copies in the sample would
be.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

__all__ = ["RowDigests", "never_cost"]


def never_cost(scale, epsilon):
    """A finite cost that gives an entry zero weight in every Gibbs kernel of
    a cost matrix with largest entry ``scale`` (``max |C|``) at ``epsilon``:
    its logit is at least 1,000 below any row's largest, whatever the
    potentials (whose spread is at most ``scale``)."""
    return 3.0 * float(scale) + 1e3 * float(epsilon)


def _row_digest(indices, values):
    """16-byte digest of one row's non-zeros (indices and float64 values)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.digest()


def _digests(Z):
    """Digests of the rows of ``Z`` (ndarray or CSR), equal iff the rows are
    (up to a 2**-128 chance): a dense row and its CSR form agree."""
    if sp.issparse(Z):
        Z = sp.csr_matrix(Z, copy=True)
        Z.sum_duplicates()
        Z.eliminate_zeros()
        Z.sort_indices()
        return [
            _row_digest(
                Z.indices[Z.indptr[i] : Z.indptr[i + 1]],
                Z.data[Z.indptr[i] : Z.indptr[i + 1]],
            )
            for i in range(Z.shape[0])
        ]
    Z = np.asarray(Z)
    out = []
    for row in Z:
        nonzero = np.flatnonzero(row)
        out.append(_row_digest(nonzero, row[nonzero]))
    return out


class RowDigests:
    """Which sample point, if any, each row of new points equals.

    Parameters
    ----------
    Z : ndarray or CSR matrix of shape (n, d)
        The sample (a fitted cloud).
    """

    def __init__(self, Z):
        self.index = {}
        for i, digest in enumerate(_digests(Z)):
            # a duplicated point is found as its first copy
            self.index.setdefault(digest, i)

    def matches(self, rows):
        """``(r, i)`` index arrays: row ``r`` of ``rows`` equals sample point
        ``i`` (its first copy; empty arrays when no row is in the sample)."""
        found = [
            (r, self.index[digest])
            for r, digest in enumerate(_digests(rows))
            if digest in self.index
        ]
        if not found:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty
        r, i = np.asarray(found, dtype=np.intp).T
        return r, i
