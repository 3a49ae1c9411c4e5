"""`xrg data`: build datasets.

    xrg data synth  --out DIR --num-studies N [--seed S] [--image-size 256] [--views 2] [--workers K]
    xrg data render --annotation A --labels L --out DIR [--seed S] [--image-size 256] [--views 2] [--workers K]
    xrg data instruct --annotation A --labels L --out FILE.jsonl [...]   (RaDialog-style instruction data)
    xrg data mimic-cxr --reports ZIP --split CSV --metadata CSV --labels CSV --out DIR   (official files)
    xrg data iu-xray --reports XML_DIR --images PNG_DIR --out DIR                         (Open-i release)
    xrg data longitudinal --out DIR --num-pairs N [--seed S] [--image-size 128] [--views 2]  (prior/current pairs)
    xrg data cache --annotation A [--image-dir D] --size S --out DIR [--workers K] [--window LOW HIGH] [--format jpeg|png]
                   (every image resized once to the recipe's `resize`; the recipe then sets image_cache: DIR)
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

from xrg.cli import CommandParser
from xrg.data.errors import DataError


def _parser() -> CommandParser:
    parser = CommandParser(prog="xrg data", description="Build datasets.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("instruct", help="instruction-tuning JSONL from an annotation + labels (see `xrg data instruct -h`)")
    commands.add_parser("mimic-cxr", help="annotation + labels from MIMIC-CXR's official files (see `xrg data mimic-cxr -h`)")
    commands.add_parser("iu-xray", help="annotation + labels from the Open-i IU X-Ray release (see `xrg data iu-xray -h`)")
    synth = commands.add_parser("synth", help="generate the synthetic chest X-ray benchmark")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--num-studies", type=int, required=True)
    synth.add_argument("--split-fractions", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                       help="shares of the studies per split (default 0.8 0.1 0.1)")
    render = commands.add_parser("render", help="render phantoms showing the labels of an existing annotation")
    render.add_argument("--annotation", type=Path, required=True, help="R2Gen annotation.json")
    render.add_argument("--labels", type=Path, required=True, help="labels.json: {study id: {label: 1|0|-1|null}}")
    render.add_argument("--out", type=Path, required=True)
    pairs = commands.add_parser("longitudinal", help="synthetic prior/current pairs whose reports word the change")
    pairs.add_argument("--out", type=Path, required=True)
    pairs.add_argument("--num-pairs", type=int, required=True)
    pairs.add_argument("--split-fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    cache = commands.add_parser("cache", help="resize a dataset's images once to the size a recipe reads")
    cache.add_argument("--annotation", type=Path, required=True, help="R2Gen annotation.json")
    cache.add_argument("--image-dir", type=Path, help="image root (default: the annotation's folder + /images)")
    cache.add_argument("--size", type=int, required=True, help="shorter side in px: the recipe's data `resize`")
    cache.add_argument("--out", type=Path, required=True)
    cache.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: every core)")
    cache.add_argument("--window", type=float, nargs=2, metavar=("LOW", "HIGH"), help="the recipe's image_window, if any")
    cache.add_argument("--format", choices=("jpeg", "png"), default="jpeg", help="jpeg: quality 95, fastest to load; png: lossless")
    for sub in (synth, render, pairs):
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--image-size", type=int, default=256)
        sub.add_argument("--views", type=int, default=2, choices=(1, 2))
    for sub in (synth, render):
        sub.add_argument("--workers", type=int, default=0, help="worker processes (0: render in this process)")
        sub.add_argument("--conspicuity", type=float, default=1.0, help="finding density scale (1 clear, 0.5 subtle)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["instruct"]:  # its own parser lives with the builder
        from xrg.data.instruct import main as instruct_main

        return instruct_main(argv[1:])
    if argv[:1] in (["mimic-cxr"], ["iu-xray"]):  # so do the preparation commands'
        module = importlib.import_module(f"xrg.data.prepare.{argv[0].replace('-', '_')}")
        try:
            return module.main(argv[1:])
        except DataError as error:
            print(f"xrg data {argv[0]}: error: {error}")
            return 2
    args = _parser().parse_args(argv)
    if args.command == "cache":
        return _cache(args)
    if args.command == "longitudinal":
        from xrg.data.synthetic.longitudinal import generate_longitudinal

        out = generate_longitudinal(args.out, args.num_pairs, args.seed, image_size=args.image_size, views=args.views,
                                    split_fractions=tuple(args.split_fractions))
        print(f"{args.num_pairs} prior/current pairs -> {out}")
        return 0
    # keep `--help` instant
    from xrg.data.cache import build_atomically
    from xrg.data.synthetic.benchmark import STAMP, ensure_benchmark, render_for_annotation

    options = {"seed": args.seed, "image_size": args.image_size, "views": args.views, "workers": args.workers,
               "conspicuity": args.conspicuity}
    start = time.perf_counter()
    try:
        if args.command == "synth":
            # built aside and renamed into place: a killed run leaves the earlier benchmark intact
            out = ensure_benchmark(args.out, args.num_studies, split_fractions=tuple(args.split_fractions), **options)
        else:
            out = build_atomically(args.out, None, lambda folder: render_for_annotation(
                args.annotation, args.labels, folder, **options), STAMP, rebuild=True, what="rendered dataset")
    except ValueError as error:  # a bad option value (e.g. --num-studies 0): the user's input too
        raise DataError(str(error)) if not isinstance(error, DataError) else error from None
    seconds = time.perf_counter() - start
    studies = len(json.loads((out / "labels.json").read_text(encoding="utf-8")))
    print(f"{studies} studies in {seconds:.1f} s ({studies / seconds:.0f} studies/s) -> {out}")
    return 0


def _cache(args) -> int:
    from xrg.data.image_cache import build_cache

    start = time.perf_counter()
    image_dir = args.image_dir or args.annotation.parent / "images"
    try:
        out = build_cache(args.annotation, image_dir, args.out, args.size, tuple(args.window) if args.window else None,
                          workers=args.workers, image_format=args.format)
    except (DataError, ValueError) as error:
        print(f"xrg data cache: error: {error}")
        return 2
    count = json.loads((out / "cache.json").read_text(encoding="utf-8"))["images"]
    print(f"{count} images at {args.size} px in {time.perf_counter() - start:.1f} s -> {out}; "
          f"set `data.init_args.image_cache: {out}` in the recipe")
    return 0
