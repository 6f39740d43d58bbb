"""The ``mobilenet-np`` command line.

    mobilenet-np classify (--model H | --weights W) IMAGE_OR_DIR...  top-k classes per image (text or --json)
    mobilenet-np features (--model H | --weights W) IMAGE_OR_DIR... -o OUT.npy|OUT.h5 [--resume]
    mobilenet-np convert SRC -o OUT.h5      checkpoint / frozen graph / SavedModel / Keras / archive -> HDF5
    mobilenet-np inspect FILE               detected format, architecture and per-layer table
    mobilenet-np models | download NAME     the published family; fetch and cache one
    mobilenet-np layers v1 --alpha 0.25 --size 192   the per-layer MAC/param table of any architecture

Exit status: 0 on success; 1 when an error (printed as one line, no traceback) stopped the command, or when
some images could not be read (each is named in a warning; the others are still processed and written);
2 for wrong usage.
"""
import argparse
import json
import os
import sys
import threading
from pathlib import Path

DEFAULT_LOADERS = min(4, os.cpu_count() or 1)   # image-reading threads (see _ImageBatches)
COMPILE_NOTICE_AFTER = 3.0   # s: a first batch slower than this is Numba compiling (a warm cache loads in ~0.3 s)
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


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _load_model(args):
    from . import load

    source = args.model or args.weights
    if not source:
        raise SystemExit("mobilenet-np: error: give --model HANDLE or --weights FILE")
    return load(source, mode=args.mode, rounding=args.rounding, threads=args.threads)


class _ImageBatches:
    """Read images in batches; unreadable ones are skipped with a warning and counted (never silently).

    ``loaders`` threads decode and resize the images (pillow releases the GIL while it does, and so does the
    compiled forward pass), one batch ahead of the one being yielded, so that reading overlaps the model's
    work. Batches, their order and the warnings' order are those of a serial read."""

    def __init__(self, paths, size, batch_size, central_fraction=None, progress=False, loaders=1):
        self.paths, self.size, self.batch_size = paths, size, batch_size
        self.central_fraction, self.progress = central_fraction, progress
        self.loaders = loaders
        self.failed = 0

    def _chunks(self):
        for start in range(0, len(self.paths), self.batch_size):
            yield self.paths[start:start + self.batch_size]

    def __iter__(self):
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np

        from .errors import InputError
        from .preprocessing import load_image

        done = 0
        with ThreadPoolExecutor(self.loaders) as pool:
            def submit(chunk):
                return chunk, [pool.submit(load_image, p, self.size, self.central_fraction) for p in chunk]

            chunks = self._chunks()
            first = next(chunks, None)
            current = submit(first) if first is not None else None
            while current is not None:
                paths, futures = current
                upcoming = next(chunks, None)       # read while the caller works on this batch
                current = submit(upcoming) if upcoming is not None else None
                chunk, images = [], []
                for p, future in zip(paths, futures):
                    try:
                        images.append(future.result())
                        chunk.append(p)
                    except InputError as e:
                        self.failed += 1
                        print(f"mobilenet-np: warning: skipped {p}: {e}", file=sys.stderr)
                done += len(paths)
                if self.progress:
                    print(f"\r  {done}/{len(self.paths)} images", end="", file=sys.stderr, flush=True)
                if images:
                    yield chunk, np.stack(images)
        if self.progress:
            print(file=sys.stderr)

    def report(self):
        if self.failed:
            print(f"mobilenet-np: {self.failed} of {len(self.paths)} images could not be read", file=sys.stderr)
            return 1
        return 0


def _first_call_explained(fn, after=COMPILE_NOTICE_AFTER):
    """``fn``, whose first call says on stderr what is happening if it has not returned after ``after`` seconds:
    the first run on a machine compiles the kernels (15-30 s), and a silent wait that long looks like a hang."""
    first = True

    def call(*args):
        nonlocal first
        if not first:
            return fn(*args)
        first = False
        timer = threading.Timer(after, print, ("mobilenet-np: compiling the kernels for this CPU (only the first "
                                               "run; later runs load them from Numba's cache) ...",),
                                {"file": sys.stderr, "flush": True})
        timer.daemon = True
        timer.start()
        try:
            return fn(*args)
        finally:
            timer.cancel()
    return call


def cmd_classify(args):
    from .labels import find_labels, top_k

    model = _load_model(args)
    if model.num_classes == 0:
        raise SystemExit("mobilenet-np: error: the weights have no classification layer; use features")
    labels = find_labels(model.num_classes, args.labels, getattr(getattr(model, "weights", None), "labels", None))
    size = (args.size, args.size) if args.size else model.input_size
    batches = _ImageBatches(_expand_images(args.images), size, args.batch_size, args.central_crop,
                            loaders=args.loaders)
    predictions = _first_call_explained(model.predictions)
    for chunk, images in batches:
        for p, top in zip(chunk, top_k(predictions(images), labels, args.top)):
            if args.json:
                print(json.dumps({"image": str(p), "top": top}))
            else:
                print(p)
                for t in top:
                    print(f"  {t['score']:.4f}  {t['index']:>4}  {t['label']}")
    return batches.report()


def _run_settings(args, model, size):
    """What decides the vectors, so that a resumed run can check that it continues the same one: the weights
    (path and, for a file, its SHA-256), how they run, and how images become inputs."""
    from .weights import sha256_of

    source, digest = args.model or args.weights, None
    if os.path.isfile(source):
        source = os.path.abspath(source)
        digest = sha256_of(source)
    return {"source": source, "sha256": digest, "model": type(model).__name__, "mode": args.mode,
            "rounding": args.rounding, "size": list(size), "central_crop": args.central_crop}


def cmd_features(args):
    from .outputs import FeatureWriter

    model = _load_model(args)
    size = (args.size, args.size) if args.size else model.input_size
    paths = _expand_images(args.images)
    with FeatureWriter(args.output, model.num_features, _run_settings(args, model, size),
                       resume=args.resume) as out:
        if len(out):
            done = out.written()
            paths = [p for p in paths if os.path.normpath(os.path.abspath(p)) not in done]
            print(f"resuming {out.partial}: {len(out)} vectors kept, {len(paths)} images to go", file=sys.stderr)
        batches = _ImageBatches(paths, size, args.batch_size, args.central_crop,
                                progress=args.progress or sys.stderr.isatty(), loaders=args.loaders)
        extract = _first_call_explained(model.features)
        try:
            for chunk, images in batches:
                out.add(chunk, extract(images))
        except KeyboardInterrupt:
            print(f"\nmobilenet-np: interrupted; {len(out)} vectors kept in {out.partial}: run the same command "
                  f"with --resume to continue", file=sys.stderr)
            return 130
        written = out.finish()
    print(f"wrote {len(out)} feature vectors of size {model.num_features} to {', '.join(written)}")
    return batches.report()


def cmd_models(args):
    from .hub import REGISTRY, cached_weights_path

    print(f"{'name':<28}{'arch':<14}{'alpha':>6}{'size':>6}{'quant':>7}{'features':>9}  cached  archive")
    for e in REGISTRY.values():
        cached = "yes" if cached_weights_path(e).exists() else "-"
        print(f"{e.name:<28}{e.family:<14}{e.depth_multiplier:>6g}{e.size:>6}{'yes' if e.quant else '-':>7}"
              f"{e.num_features:>9}  {cached:<6}  {e.archive_name}")
    return 0


def cmd_download(args):
    from .hub import fetch

    for name in args.names:
        print(fetch(name, progress=not args.quiet))
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

    def model_options(p):
        p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--model", help="TF-Hub handle or short name (see `mobilenet-np models`); downloaded once")
        src.add_argument("--weights", help="our .h5 or any file `convert` reads, or a .tflite")
        p.add_argument("--mode", choices=["float", "fake_quant", "uint8"],
                       help="float (default), fake_quant (quantops), uint8 (TFLite integer arithmetic)")
        p.add_argument("--rounding", choices=["reference", "xnnpack"], default="reference",
                       help="uint8 mode: TFLite reference kernels (default) or the XNNPACK delegate")
        p.add_argument("--size", type=int, help="resize images to this size instead of the model's")
        p.add_argument("--central-crop", type=float, metavar="FRACTION",
                       help="keep the central part before resizing (slim's eval uses 0.875)")
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--threads", type=_positive_int, default=1,
                       help="threads sharing the images of each batch (default 1)")
        p.add_argument("--loaders", type=_positive_int, default=DEFAULT_LOADERS,
                       help=f"threads decoding and resizing images, ahead of the model (default {DEFAULT_LOADERS})")

    p = sub.add_parser("classify", help="print the top classes of each image")
    model_options(p)
    p.add_argument("--top", type=int, default=5, help="how many classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per image and line")
    p.add_argument("--labels", help="labels file (default: stored in the weights, $MOBILENET_NP_LABELS, ...)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("features", help="write the feature vector of every image to .npy or .h5")
    model_options(p)
    p.add_argument("-o", "--output", required=True, help="OUT.npy (+ OUT.files.txt) or OUT.h5")
    p.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (kept in OUT.partial), skipping the images it wrote")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("models", help="list the published models this tool can download")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("download", help="download and convert published models into the cache")
    p.add_argument("names", nargs="+", help="TF-Hub handles or short names")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_download)

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
