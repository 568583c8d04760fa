"""Scale-out and resumable runs: `fuse()` split into 2-D blocks of the output grid, on a Dask cluster or in-process.
blocks: the plan, the spec and the per-block compute (what a worker runs); journal: the partial GeoTIFF and its
sidecar JSON (`--resume`); cluster: the Dask client and the submission loop; runner: `fuse_blocks`, where the
client measures everything scene-wide once and hands it to the blocks. Every method writes the same bytes as
`fuse()`; see docs/scale.md."""

from .blocks import (
    BLOCK_COLS,
    BLOCK_ROWS,
    GDAL_CACHE_MB,
    Block,
    BlockResult,
    BlockSpec,
    check_worker,
    plan_blocks,
    run_block,
)
from .cluster import ClusterOptions, check_workers, cluster_client, run_on_cluster
from .journal import JOURNAL_VERSION, BlockJournal, describe_job
from .runner import BlockProgress, block_spec, fuse_blocks

__all__ = [
    "BLOCK_COLS",
    "BLOCK_ROWS",
    "GDAL_CACHE_MB",
    "JOURNAL_VERSION",
    "Block",
    "BlockJournal",
    "BlockProgress",
    "BlockResult",
    "BlockSpec",
    "ClusterOptions",
    "block_spec",
    "check_worker",
    "check_workers",
    "cluster_client",
    "describe_job",
    "fuse_blocks",
    "plan_blocks",
    "run_block",
    "run_on_cluster",
]
