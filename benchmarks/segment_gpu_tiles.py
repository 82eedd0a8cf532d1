"""Which tile size keeps a GPU busiest: the CUDA pipeline of ``segment`` on the tile grid of one volume.

For each tile size, the windows ``segment`` would cut from the volume (``tile_grid``) go through
``CudaBackend.run_windows`` from memory, so reading and writing files do not count: what is timed is the
GPU's share of the tiles stage (the copies to and from the GPU, normalization, the network, quantization),
in the batches ``segment`` would form. Beside it, the network alone on one batch already on the GPU, the
ceiling. The voxels sent through the network grow with the halo overhead (window voxels / volume voxels),
which falls as the tiles grow; a network's speed per voxel falls on very large windows. The fastest tile
for the card is the one ``segment`` should choose.

    python benchmarks/segment_gpu_tiles.py                       # on a CUDA GPU: 256x1024x1024
    python benchmarks/segment_gpu_tiles.py --dry-run             # on the CPU, tiny, to check the script

Writes benchmarks/results/segment_gpu_tiles.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


VARIANTS = {
    "plain": "the model as segment runs it (BatchNorms folded; memory order by tomoseg.memory_order: channels-last "
             "for bf16/fp16 with cuDNN 9.8+, else contiguous)",
    "as-trained": "the model as trained, BatchNorms not folded, contiguous (what segment ran before)",
    "channels-last": "folded, weights and activations in channels-last-3D memory order",
    "contiguous": "folded, contiguous memory order",
    "compile": "torch.compile of the folded model (its compile time in the untimed warm-up)",
    "rewritten": "folded, decoder rewritten (tomoseg.inference_graph: transposed convolutions, no concatenation), "
                 "memory order by the rule",
    "rewritten-channels-last": "folded, decoder rewritten, channels-last-3D",
}


def _backend(model, device: str, precision: str, variant: str):
    """The CUDA backend with its model as ``variant`` says (candidates for a faster network; segment uses rewritten)."""
    import torch

    from tomoseg.inference.cuda_pipeline import CudaBackend

    order = {"channels-last": True, "compile-channels-last": True, "contiguous": False, "as-trained": False,
             "rewritten-channels-last": True}
    backend = CudaBackend(model, device=device, precision=precision, channels_last=order.get(variant),
                          rewrite=variant.startswith("rewritten"))
    if variant == "as-trained":
        backend.model = model.to(device).eval()
    if variant.startswith("compile"):
        backend.model = torch.compile(backend.model, dynamic=False)
    return backend


def measure(shape, tile: int, precision: str, device: str, repeats: int, model_path=None,
            variant: str = "plain", batch_limit: int | None = None) -> dict:
    import torch

    import tomoseg
    from tomoseg.inference.engine import _Stream
    from tomoseg.inference.normalization import Stats
    from tomoseg.inference.tiling import TilingConfig, tile_grid

    model = tomoseg.load_model(model_path)
    tiles = tile_grid(shape, TilingConfig(tile_size=tile), model.config.divisor)
    window = tuple(s.stop - s.start for s in tiles[0].read)
    raw = np.random.default_rng(0).integers(60, 200, window, dtype=np.uint8)
    stats = Stats(mean=128.0, std=40.0, voxels=raw.size, method="full")
    backend = _backend(model, device, precision, variant)
    if batch_limit:  # at most this many windows a batch (segment: as many as fit, up to 8, balanced)
        backend.batch_limit = batch_limit
    batch = backend.batch_limit_for(window, len(tiles))

    def pipeline():
        stream = _Stream(((t, raw) for t in tiles), len(tiles))
        for _ in backend.run_windows(stream, stats):
            pass
        _sync(device)

    x = torch.from_numpy(raw).to(device).float()[None, None].expand(batch, 1, *window).contiguous()

    def network():
        with torch.inference_mode():
            backend._logits(x)
        _sync(device)

    row = {"tile": tile, "precision": precision, "variant": variant, "windows": len(tiles), "window": "x".join(map(str, window)),
           "batch": batch, "overhead": len(tiles) * math.prod(window) / math.prod(shape)}
    for name, fn, voxels in (("pipeline", pipeline, math.prod(shape)), ("network", network, batch * math.prod(window))):
        fn()  # warm-up: cuDNN tries its kernels for the shape
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        row[name + "_s"] = statistics.median(times)
        row[name + "_mvox"] = voxels / row[name + "_s"] / 1e6
    if str(device).startswith("cuda"):
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return row


def table(rows, shape) -> str:
    lines = [f"{' x '.join(map(str, shape))} uint8, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n",
             "| tile | precision | variant | windows | window | batch | window voxels / volume | pipeline s | pipeline Mvox/s "
             "of volume | network alone, Mvox/s of windows | peak GPU GiB |",
             "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['tile']} | {r['precision']} | {r.get('variant', 'plain')} | failed: {r['failed']} "
                         "|||||||")
            continue
        lines.append(f"| {r['tile']} | {r['precision']} | {r.get('variant', 'plain')} | {r['windows']} | {r['window']} | {r['batch']} | "
                     f"{r['overhead']:.2f} | {r['pipeline_s']:.2f} | {r['pipeline_mvox']:.0f} | "
                     f"{r['network_mvox']:.0f} | {r.get('peak_gib', float('nan')):.1f} |")
    best = max((r for r in rows if "failed" not in r), key=lambda r: r["pipeline_mvox"], default=None)
    if best:
        lines.append(f"\nFastest: tile {best['tile']}, {best['precision']}, {best.get('variant', 'plain')} "
                     f"({best['pipeline_mvox']:.0f} Mvox/s of volume). "
                     "Medians of the timed runs after one warm-up per row; the windows come from memory.\n")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from _report import emit_section

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="256x1024x1024")
    ap.add_argument("--tiles", type=int, nargs="+", default=[192, 256, 320, 384, 512])
    ap.add_argument("--precisions", nargs="+", default=["f32", "bf16"])
    ap.add_argument("--variants", nargs="+", default=["plain"],
                    choices=sorted(VARIANTS) + ["compile-channels-last"],
                    help="; ".join(f"{k}: {v}" for k, v in VARIANTS.items()))
    ap.add_argument("--batches", type=int, nargs="+", default=[0],
                    help="at most this many windows a batch, each a row (0: segment's choice). Whether one window a "
                         "batch keeps the GPU as busy: smaller batches shorten the pipeline's fill and drain")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dry-run", action="store_true", help="on the CPU, a tiny volume (checks the script)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "segment_gpu_tiles.md"))
    args = ap.parse_args(argv)
    import torch

    if args.dry_run:
        shape, device, name = (32, 96, 96), "cpu", "dry run on the CPU"
        torch.cuda.mem_get_info = lambda device=None: (2 * 10**9, 4 * 10**9)
        args.tiles, args.repeats = [16, 32], 1
    else:
        if not torch.cuda.is_available():
            print("no CUDA GPU here; --dry-run checks the script on the CPU")
            return 1
        shape, device = tuple(int(s) for s in args.shape.split("x")), "cuda"
        name = torch.cuda.get_device_name(0)
    # the regime of tomoseg.memory_order's rule: cuDNN 9.8+ loses contiguous half-precision 3D convolutions
    name += f" (torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()})"
    rows = []
    for tile in args.tiles:
        for precision in args.precisions:
            for variant in args.variants:
                for batch in args.batches:
                    try:
                        rows.append(measure(shape, tile, precision, device, args.repeats, variant=variant,
                                            batch_limit=batch or None))
                    except Exception as exc:  # out of memory, an index limit, a compiler missing: the others count
                        rows.append({"tile": tile, "precision": precision, "variant": variant,
                                     "failed": f"{type(exc).__name__}: {exc}"[:120]})
            if device == "cuda":
                torch.cuda.empty_cache()  # the row's batch and model are gone: their memory back to the card
            print(rows[-1], flush=True)
    emit_section(args.out, f"{name}, {'x'.join(map(str, shape))}", table(rows, shape), title="Tile size on a GPU",
                 intro="Written by benchmarks/segment_gpu_tiles.py: the CUDA pipeline of `segment` on the windows of each "
                       "tile size, from memory (no file reading or writing), and the network alone on one batch.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
