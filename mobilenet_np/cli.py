"""The ``mobilenet-np`` command line.

    mobilenet-np convert SRC -o OUT.h5          checkpoint / frozen graph / SavedModel / Keras / archive -> HDF5
    mobilenet-np classify --weights W IMAGE...  top-k classes per image (text or --json lines)
    mobilenet-np inspect FILE                   detected architecture and per-layer table
    mobilenet-np layers v1 --alpha 0.25 --size 192   the per-layer MAC/param table of any architecture

Exit status: 0 on success, 1 when an error (printed as one line, no traceback) stopped the command or some
images could not be read, 2 for wrong usage.
"""
import argparse
import json
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _expand_images(items):
    """Files as given; folders searched recursively for image files (sorted)."""
    paths = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(p)
    return paths


def cmd_convert(args):
    from . import read_weights
    from .labels import read_labels
    from .weights import save_hdf5

    weights = read_weights(args.source, input_size=args.input_size, ema=args.ema)
    if args.labels:
        weights.labels = read_labels(args.labels)
    out = save_hdf5(weights, args.output, strict=args.strict)
    arch = weights.architecture()
    print(f"wrote {out}: {arch.family} depth_multiplier={arch.depth_multiplier:g} "
          f"input={weights.input_size[0]}x{weights.input_size[1]} num_classes={arch.num_classes} "
          f"({len(arch.variables())} variables) from {weights.source_file}")
    for note in weights.notes:
        print(f"note: {note}")
    return 0


def cmd_classify(args):
    import numpy as np

    from . import load
    from .errors import InputError
    from .labels import find_labels, top_k
    from .preprocessing import load_image

    model = load(args.weights)
    if model.num_classes == 0:
        raise SystemExit("mobilenet-np: error: the weights have no classification layer; use features")
    size = (args.size, args.size) if args.size else model.input_size
    labels = find_labels(model.num_classes, args.labels, model.weights.labels)
    paths = _expand_images(args.images)
    failed = 0
    for start in range(0, len(paths), args.batch_size):
        chunk, images = [], []
        for p in paths[start:start + args.batch_size]:
            try:
                images.append(load_image(p, size))
                chunk.append(p)
            except InputError as e:
                failed += 1
                print(f"mobilenet-np: warning: skipped {p}: {e}", file=sys.stderr)
        if not images:
            continue
        probs = model.predictions(np.stack(images))
        for p, top in zip(chunk, top_k(probs, labels, args.top)):
            if args.json:
                print(json.dumps({"image": str(p), "top": top}))
            else:
                print(p)
                for t in top:
                    print(f"  {t['score']:.4f}  {t['index']:>4}  {t['label']}")
    if failed:
        print(f"mobilenet-np: {failed} of {len(paths)} images could not be read", file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args):
    from . import read_weights
    from .architectures import format_layer_table

    from weights_tools.convert import source_kind

    kind = source_kind(args.file)
    weights = read_weights(args.file, ema=args.ema)
    arch = weights.architecture()
    print(f"file: {args.file}  (format: {kind})")
    print(f"source: {weights.source_file or '-'}  sha256: {weights.source_sha256 or '-'}")
    extra = sorted(set(weights.variables) - set(arch.variables()))
    print(f"variables: {len(arch.variables())} used, {len(extra)} others"
          + (f" (e.g. {', '.join(extra[:3])})" if extra else ""))
    print(f"batch_norm_epsilon: {weights.batch_norm_epsilon:g}  labels: {'stored' if weights.labels else 'none'}")
    for note in weights.notes:
        print(f"note: {note}")
    h, w = (args.size, args.size) if args.size else weights.input_size
    print(format_layer_table(arch, h, w))
    return 0


def cmd_layers(args):
    from .architectures import build, format_layer_table

    arch = build(args.architecture, args.alpha, args.classes)
    print(format_layer_table(arch, args.size, args.width or args.size))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="mobilenet-np", description="MobileNet V1/V2 in NumPy + Numba.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="convert TensorFlow/Keras weights to our HDF5")
    p.add_argument("source", help="checkpoint prefix or .index, frozen graph .pb, SavedModel or hub module folder, "
                                  "Keras .h5, or a release .tgz")
    p.add_argument("-o", "--output", required=True, help="output .h5 file (written atomically)")
    p.add_argument("--input-size", type=int, help="training input size, when the file does not say it")
    p.add_argument("--labels", help="a labels file (one class per line) to store in the weights")
    p.add_argument("--strict", action="store_true", help="fail on variables the architecture does not use")
    p.add_argument("--ema", action="store_true", help="use a checkpoint's ExponentialMovingAverage values")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("classify", help="print the top classes of each image")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--weights", required=True, help="our .h5 or any file `convert` reads")
    p.add_argument("--top", type=int, default=5, help="how many classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per image and line")
    p.add_argument("--labels", help="labels file (default: stored in the weights, $MOBILENET_NP_LABELS, ...)")
    p.add_argument("--size", type=int, help="resize images to this size instead of the model's")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("inspect", help="detected architecture, per-layer shapes, params and MACs of a file")
    p.add_argument("file")
    p.add_argument("--size", type=int, help="input size for the MAC count (default: the file's)")
    p.add_argument("--ema", action="store_true", help="use a checkpoint's ExponentialMovingAverage values")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("layers", help="per-layer table of an architecture (no file needed)")
    p.add_argument("architecture", choices=["v1", "v2", "mobilenet_v1", "mobilenet_v2"])
    p.add_argument("--alpha", type=float, default=1.0, help="depth multiplier")
    p.add_argument("--size", type=int, default=224, help="input height (and width unless --width)")
    p.add_argument("--width", type=int)
    p.add_argument("--classes", type=int, default=1001, help="logits size, 0 for none")
    p.set_defaults(func=cmd_layers)
    return parser


def main(argv=None):
    from .errors import MobileNetError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MobileNetError as e:
        print(f"mobilenet-np: error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"mobilenet-np: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # bad option values such as a non-positive --alpha
        print(f"mobilenet-np: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
