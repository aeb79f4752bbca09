"""`hydranet weights download|list`: the authors' published checkpoints, verified and cached."""

from __future__ import annotations

import argparse

from hydranet_ros.model import published


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="weights_command", required=True, metavar="{download,list}")
    get = sub.add_parser("download", help="download, verify (git blob id), convert and cache published weights")
    get.add_argument("preset", choices=list(published.PUBLISHED), help="which published model")
    get.add_argument("--force", action="store_true", help="download again even if cached")
    get.add_argument("--url", help=f"base URL of a mirror (default: ${published.BASE_URL_ENV} or the authors' repository)")
    sub.add_parser("list", help="show the cache folder and which published weights are in it")


def run(args: argparse.Namespace) -> int:
    if args.weights_command == "list":
        print(f"cache folder: {published.weights_cache_dir()}  ($HYDRANET_CACHE_DIR or $XDG_CACHE_HOME/hydranet_ros)")
        for preset, info in published.PUBLISHED.items():
            path = published.cached_weights_path(preset)
            print(f"{preset:11s} {info.filename:25s} {'cached at ' + str(path) if path.is_file() else 'not cached'}")
        return 0
    from tqdm import tqdm

    from hydranet_ros.model import download

    bar = tqdm(unit="B", unit_scale=True, desc=args.preset, disable=None)

    def progress(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        path = download.download_published(args.preset, base_url=args.url, progress=progress, force=args.force)
    finally:
        bar.close()
    print(f"{args.preset}: verified and cached at {path}")
    return 0
