"""Reading training batches from a cutout store.

The dataset holds only the store (paths, opened lazily in each DataLoader worker) and the row
indices; whole batches are fetched through ``__getitems__`` rather than image by image.

Random access is what HDF5 does worst: measured here, 128 scattered rows read at ~300 images/s,
whole 64-row chunks at ~6000 images/s. So the training order is *block-shuffled*: the rows are cut
into blocks of consecutive rows, each epoch takes the blocks in a random order, pools a window of
several blocks, shuffles the rows inside the window and cuts it into batches. Every batch mixes
galaxies from many places in the store (enough even if the store is sorted, e.g. by redshift),
and the worker reads each block once, contiguously, from a small cache.

Under DDP the rows, not the windows, are shared out: every epoch the block order is cut into
``world_size`` equal, disjoint, contiguous shares of rows (a rank reads only its own blocks; a store
with fewer than a window per rank is shared out row by row), and each rank cuts its share into
windows. So every rank gets the same number of batches (ranks step in lockstep) even on a store
smaller than one window per rank; a configuration in
which some rank would get no batch at all is refused (:class:`~deepdip.errors.DeepdipError`).

Augmentation is not done here but on the batch in the LightningModule, seeded by the global step,
so it is reproducible whatever the number of workers and across a resume.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from deepdip.errors import DeepdipError
from deepdip.zgrid import ZGrid

BLOCK_ROWS = 64        # the store's HDF5 chunk height (deepdip.store.writer.CHUNK_ROWS)
WINDOW_BLOCKS = 16     # blocks pooled and shuffled together: 1024 rows, 8 batches of 128


class StoreDataset(Dataset):
    """Rows of a :class:`~deepdip.store.CutoutStore` as ``(images, extra, zbin, z, labels, weight)`` batches.

    ``images`` float32 ``[n, B, H, W]`` raw fluxes; ``extra`` float32 ``[n, E]`` (E(B-V));
    ``zbin`` int64 ``[n]`` target bin of z_spec on ``zgrid``; ``z`` float32 ``[n]`` z_spec;
    ``labels`` float32 ``[n, P]`` the physical parameters named by ``properties`` (NaN where
    unknown; ``[n, 0]`` without); ``weight`` float32 ``[n]`` each galaxy's weight in the loss
    (``weights``, e.g. ``--reweight``; ones without).
    The catalogue columns (a few floats per galaxy) are read once; images are read block by block
    (``BLOCK_ROWS`` consecutive dataset positions) through a cache of ``cache_blocks`` blocks, or of
    every block when all the dataset's images fit in ``cache_bytes``: then each is read from the store
    once, and later epochs take their batches from memory (the values are the same either way).
    """

    def __init__(self, store, rows: np.ndarray, zgrid: ZGrid, extra_columns=("ebv",),
                 cache_blocks: int = 2 * WINDOW_BLOCKS, properties=(), weights=None, cache_bytes: int = 0):
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)
        if np.any(np.diff(self.rows) <= 0):
            raise ValueError("dataset rows must be sorted and unique (block reads rely on it)")
        self.z = store.column("z_spec", self.rows).astype(np.float32)
        self.zbin = zgrid.bin_index(np.nan_to_num(self.z, nan=zgrid.zmin))
        cols = [store.column(c, self.rows).astype(np.float32) for c in extra_columns]
        self.extra = np.stack(cols, axis=1) if cols else np.zeros((len(self.rows), 0), np.float32)
        if properties:
            from deepdip.properties import property_labels
            self.labels = property_labels(store, list(properties), self.rows)
        else:
            self.labels = np.zeros((len(self.rows), 0), np.float32)
        self.weight = (np.ones(len(self.rows), np.float32) if weights is None
                       else np.asarray(weights, dtype=np.float32).reshape(len(self.rows)))
        pixels = len(self.rows) * store.n_bands * int(np.prod(store.image_shape))
        self.image_bytes = pixels * np.dtype(np.float32).itemsize   # as the batches hold them
        self.holds_all = self.image_bytes <= cache_bytes
        self.cache_blocks = cache_blocks
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._all: np.ndarray | None = None        # holds_all: every image, filled block by block
        self._loaded = np.zeros(-(-len(self.rows) // BLOCK_ROWS), dtype=bool)

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self):  # workers start with an empty cache
        state = self.__dict__.copy()
        state["_cache"], state["_all"], state["_loaded"] = OrderedDict(), None, np.zeros_like(self._loaded)
        return state

    def _block(self, b: int) -> np.ndarray:
        """Images ``[<=BLOCK_ROWS, B, H, W]`` of block ``b``: one contiguous read, then cached."""
        if b in self._cache:
            self._cache.move_to_end(b)
            return self._cache[b]
        images = self._read_block(b)
        self._cache[b] = images
        if len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return images

    def _read_block(self, b: int) -> np.ndarray:
        """Block ``b``'s images from the store: one read of consecutive dataset positions."""
        return self.store.images(self.rows[b * BLOCK_ROWS:(b + 1) * BLOCK_ROWS])

    def _from_memory(self, idx: np.ndarray) -> np.ndarray:
        """``holds_all``: the images of ``idx`` from the in-memory copy, reading the blocks not yet in it."""
        if self._all is None:   # pages are only committed as blocks are written into them
            self._all = np.empty((len(self.rows), self.store.n_bands, *self.store.image_shape), dtype=np.float32)
        for b in np.unique(idx // BLOCK_ROWS):
            if not self._loaded[b]:
                self._all[b * BLOCK_ROWS:(b + 1) * BLOCK_ROWS] = self._read_block(b)
                self._loaded[b] = True
        return self._all[idx]   # one gathering copy

    def __getitems__(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        if self.holds_all:
            images = self._from_memory(idx)
        else:
            blocks = idx // BLOCK_ROWS
            first = np.asarray(self._block(int(blocks[0])))
            images = np.empty((len(idx), *first.shape[1:]), dtype=np.float32)   # [n, B, H, W]
            for b in np.unique(blocks):
                sel = np.flatnonzero(blocks == b)
                images[sel] = self._block(int(b))[idx[sel] - b * BLOCK_ROWS]
        return (torch.from_numpy(images), torch.from_numpy(self.extra[idx]),
                torch.from_numpy(self.zbin[idx]), torch.from_numpy(self.z[idx]), torch.from_numpy(self.labels[idx]),
                torch.from_numpy(self.weight[idx]))

    def __getitem__(self, i):
        return tuple(t[0] for t in self.__getitems__([i]))


class ConcatStoreDataset(Dataset):
    """Several :class:`StoreDataset` (e.g. a store's labelled galaxies and generated ones from another
    store, ``--augment-store``) as one: position ``i`` of the concatenation is position ``i - offset``
    of its part. Batches are read part by part (each in its own block order) and put back in order."""

    def __init__(self, parts: list[StoreDataset]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitems__(self, indices):
        idx = np.asarray(indices, dtype=np.int64)
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        pieces = [(np.flatnonzero(part == k), self.parts[k].__getitems__((idx[part == k] - self.offsets[k]).tolist()))
                  for k in np.unique(part)]
        out = []
        for field in range(len(pieces[0][1])):
            first = pieces[0][1][field]
            merged = torch.empty((len(idx), *first.shape[1:]), dtype=first.dtype)
            for where, tensors in pieces:
                merged[torch.from_numpy(where)] = tensors[field]
            out.append(merged)
        return tuple(out)

    def __getitem__(self, i):
        return tuple(t[0] for t in self.__getitems__([i]))


class BlockShuffleBatchSampler(Sampler):
    """Batches of dataset positions in an order fixed by (seed, epoch, rank).

    With ``shuffle``: blocks of ``BLOCK_ROWS`` positions in random order, pooled ``window`` blocks
    at a time, rows shuffled within the pool and cut into batches. Under DDP (``world_size > 1``)
    the rows in that block order (in a random order when there are fewer than ``window`` blocks per
    rank) are cut into ``world_size`` equal contiguous shares, rank r takes share r (the
    ``n % world_size`` rows at the end of the epoch's order are left out of that epoch, as
    ``DistributedSampler(drop_last=True)`` does) and pools its share ``window * BLOCK_ROWS`` rows at
    a time: the shares are disjoint and every rank has the same number of batches. Without
    ``shuffle``: consecutive batches (validation, prediction); under DDP, rank r takes the r-th of
    ``world_size`` contiguous, nearly equal parts. Lightning calls :meth:`set_epoch` each epoch
    (and on resume), like ``DistributedSampler``.

    Raises :class:`~deepdip.errors.DeepdipError` when some rank would get no batch.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, window: int = WINDOW_BLOCKS):
        if batch_size < 1:
            raise DeepdipError(f"batch size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last, self.window = rank, world_size, drop_last, window
        self.epoch = 0
        check_batches_per_rank(n, world_size, batch_size if drop_last else 1,
                               "training" if shuffle else "validation")
        # Lightning calls set_epoch on ``loader.sampler`` and ``loader.batch_sampler.sampler`` only.
        self.sampler = _EpochSetter(self)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _windows(self) -> list[np.ndarray]:
        n_blocks = -(-self.n // BLOCK_ROWS)
        if not self.shuffle:
            if self.world_size > 1:   # contiguous, nearly equal parts: none empty (checked above)
                lo, hi = (self.n * self.rank) // self.world_size, (self.n * (self.rank + 1)) // self.world_size
            else:
                lo, hi = 0, self.n
            span = self.window * BLOCK_ROWS
            return [np.arange(s, min(s + span, hi)) for s in range(lo, hi, span)]
        rng = np.random.default_rng([int(self.seed), self.epoch, 17])
        order = rng.permutation(n_blocks)
        if self.world_size == 1:
            wins = []
            for s in range(0, n_blocks, self.window):
                pos = np.concatenate([np.arange(b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, self.n))
                                      for b in order[s:s + self.window]])
                wins.append(rng.permutation(pos))
            return wins
        # DDP: every rank derives the same order of rows, then takes its own share of it. A store
        # smaller than a window per rank is shuffled row by row (its reads are few anyway); a
        # larger one in block order, so that a rank reads only its own blocks.
        span = self.window * BLOCK_ROWS
        if self.n < span * self.world_size:
            rows = rng.permutation(self.n)
        else:
            rows = np.concatenate([np.arange(b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, self.n)) for b in order])
        share = self.n // self.world_size
        mine = rows[self.rank * share:(self.rank + 1) * share]
        rank_rng = np.random.default_rng([int(self.seed), self.epoch, 17, self.rank])
        return [rank_rng.permutation(mine[s:s + span]) for s in range(0, len(mine), span)]

    def _batches(self):
        for pos in self._windows():
            for s in range(0, len(pos), self.batch_size):
                batch = pos[s:s + self.batch_size]
                if self.drop_last and len(batch) < self.batch_size:
                    continue
                yield batch.tolist()

    def __iter__(self):
        return self._batches()

    def __len__(self) -> int:
        return sum(1 for _ in self._batches())


def check_batches_per_rank(n: int, world_size: int, min_rows: int = 1, what: str = "training") -> None:
    """Refuse (:class:`DeepdipError`) a split of ``n`` rows over ``world_size`` processes in which
    some process would get fewer than ``min_rows`` rows, i.e. no batch: DDP would then train (or
    validate) on nothing, or hang waiting for the empty rank."""
    if world_size < 1:
        raise ValueError(f"world size must be at least 1, got {world_size}")
    if n // world_size < max(1, min_rows):
        fix = "fewer --devices/--num-nodes" + (", a smaller --batch-size" if min_rows > 2 else "")
        raise DeepdipError(
            f"{n} {what} rows cannot be shared by {world_size} processes: each would get {n // world_size} "
            f"(needs at least {max(1, min_rows)} for one batch); use {fix} or more galaxies")


class _EpochSetter:
    """Forwards ``set_epoch`` to its batch sampler (where Lightning looks for it)."""

    def __init__(self, owner: BlockShuffleBatchSampler):
        self.owner = owner

    def set_epoch(self, epoch: int) -> None:
        self.owner.set_epoch(epoch)


def _batched(batch):
    """``__getitems__`` already returns whole tensors: nothing left to collate."""
    return batch


def make_loader(dataset: StoreDataset, *, batch_size: int, shuffle: bool, seed: int, num_workers: int,
                rank: int = 0, world_size: int = 1, drop_last: bool = False, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of block-shuffled batches whose order depends only on (seed, epoch, rank).

    ``pin_memory`` (for a GPU): batches land in page-locked memory, so the copy to the device is
    asynchronous and overlaps the step (Lightning moves them with ``non_blocking``).
    """
    sampler = BlockShuffleBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, rank=rank,
                                       world_size=world_size, drop_last=drop_last)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=_batched,
                      persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None,
                      pin_memory=pin_memory)


def make_datamodule(store, train_rows, val_rows, zgrid: ZGrid, *, batch_size: int, num_workers: int, seed: int,
                    pin_memory: bool = False, properties=(), weights=None, augment=None, cache_bytes: int = 0):
    """A ``LightningDataModule`` over ``train_rows`` (block-shuffled per epoch) and ``val_rows``;
    ``augment`` = (another store, its rows) adds those galaxies to the training set (weight 1).
    ``cache_bytes``: decoded images each reading process may keep (:func:`deepdip.hardware.image_cache_bytes`),
    given to the training set, then the added galaxies, then the validation set, each kept whole if it
    fits in what is left."""
    import lightning as L

    class _DataModule(L.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.batch_size = batch_size   # training batch; validation uses twice as many

        def setup(self, stage=None):
            # Before any reading: every rank makes the same check, so all of them stop together.
            _, world = self._rank()
            check_batches_per_rank(len(train_rows), world, 2, "training")   # batch norm needs 2 rows
            check_batches_per_rank(len(val_rows), world, 1, "validation")
            w_train, w_val = weights if weights is not None else (None, None)
            left = cache_bytes

            def dataset(source, rows, w):
                nonlocal left
                part = StoreDataset(source, rows, zgrid, properties=properties, weights=w, cache_bytes=left)
                left -= part.image_bytes if part.holds_all else 0
                return part

            self.train_set = dataset(store, train_rows, w_train)
            if augment is not None:
                other, rows = augment
                self.train_set = ConcatStoreDataset([self.train_set, dataset(other, rows, None)])
            self.val_set = dataset(store, val_rows, w_val)

        def _rank(self):
            t = self.trainer
            return (t.global_rank, t.world_size) if t is not None else (0, 1)

        def train_dataloader(self):
            rank, world = self._rank()
            # drop_last keeps batch norm away from a batch of one at the end of a window.
            return make_loader(self.train_set, batch_size=batch_size, shuffle=True, seed=seed,
                               num_workers=num_workers, rank=rank, world_size=world,
                               drop_last=len(self.train_set) // world > batch_size, pin_memory=pin_memory)

        def val_dataloader(self):
            rank, world = self._rank()
            return make_loader(self.val_set, batch_size=2 * batch_size, shuffle=False, seed=seed,
                               num_workers=num_workers, rank=rank, world_size=world, pin_memory=pin_memory)

    return _DataModule()
