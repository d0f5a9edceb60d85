"""The one progress bar of the package (tqdm), silent unless ``verbose``.

Every long loop (Sinkhorn iterations, training steps, chunks of map
evaluation) reports through :class:`Progress`, so that all estimators show
the same kind of bar, cost nothing when quiet, and leave their final count
and status on screen when they finish.

The estimators' ``verbose`` is ``True``, ``False`` or ``"auto"`` (their
default): a bar only for work that takes more than a few seconds, judged by
:func:`show_progress` from the size of the problem before it starts.
"""

from tqdm.auto import tqdm

__all__ = ["AUTO_WORK", "AUTO_STEPS", "Progress", "progress_over", "show_progress"]

#: ``verbose="auto"`` shows a bar for kernel work of at least this many
#: (row, column, feature) triples: the n x m x d of a cost matrix or a map
#: evaluation, about 2 s on 2 cores for the elastic kernels (Kang harmony,
#: 1,000 x 1,000 cells x 9,015 genes = 9e9, fits in 0.8 s without a bar)
AUTO_WORK = 2e10
#: ... and for training loops of at least this many planned steps (each
#: step of the torch estimators takes milliseconds at least)
AUTO_STEPS = 200


def show_progress(verbose, work=0.0, steps=0):
    """Whether a bar is shown: ``verbose`` itself, or for ``"auto"`` whether
    ``work >= AUTO_WORK`` or ``steps >= AUTO_STEPS``."""
    if isinstance(verbose, str):
        if verbose != "auto":
            raise ValueError(f'verbose must be a bool or "auto", got {verbose!r}.')
        return work >= AUTO_WORK or steps >= AUTO_STEPS
    return bool(verbose)


class Progress:
    """A tqdm bar over ``total`` steps of a loop; a no-op when not ``verbose``.

    Parameters
    ----------
    total : int
        Planned number of steps (the bar may stop earlier: :meth:`close`
        shows the count reached).
    desc : str
        Label of the bar (the estimator or solver name).
    verbose : bool
        Without it nothing is created and every method returns at once.
    unit : str, default="it"
    every : int, default=1
        Refresh the bar once every ``every`` steps only, so that the bar
        costs nothing next to a cheap step (Sinkhorn iterations on small
        problems).
    """

    def __init__(self, total, desc, verbose, unit="it", every=1):
        self.bar = tqdm(total=total, desc=desc, unit=unit) if verbose else None
        self.every = max(1, int(every))
        self.count = 0
        self._pending = 0
        self._status = {}

    @property
    def active(self):
        """Whether a bar is shown (``verbose``)."""
        return self.bar is not None

    def step(self, n=1, **status):
        """Advance by ``n`` steps; keyword arguments update the status shown."""
        if self.bar is None:
            return
        self.count += n
        self._pending += n
        if status:
            self._status.update(status)
        if self._pending >= self.every:
            self._flush()

    def show(self, **status):
        """Update the status shown next to the bar (``name=value`` pairs)."""
        if self.bar is None:
            return
        self._status.update(status)
        self.bar.set_postfix(self._status, refresh=False)

    def _flush(self):
        self.bar.update(self._pending)
        self._pending = 0
        if self._status:
            self.bar.set_postfix(self._status, refresh=False)

    def close(self, count=None, **status):
        """Leave the bar at ``count`` steps (default: the steps reported)."""
        if self.bar is None:
            return
        self._status.update(status)
        # count holds every step reported, flushed or not
        self.bar.n = self.count if count is None else int(count)
        self._pending = 0
        if self._status:
            self.bar.set_postfix(self._status, refresh=False)
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_over(iterable, desc, verbose, min_items=2):
    """``iterable`` wrapped in a bar when ``verbose`` and it has ``min_items``+.

    For loops over chunks of rows: a single chunk gets no bar.
    """
    items = list(iterable)
    if not verbose or len(items) < min_items:
        return items
    return tqdm(items, desc=desc)
